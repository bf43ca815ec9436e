package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/pflag"

	"distbuild/controller/statedb"
)

const stateAbout = `Usage:
  controller state check --state-dir DIR                check state.db and its backups; exit 1 if state.db is damaged
  controller state backup --state-dir DIR [--to FILE]   back state.db up (default: a rolling backup in DIR/backups)
  controller state repair --state-dir DIR               rebuild a damaged state.db from its backups and what is readable

The controller keeps builds and their events in STATE_DIR/state.db (bbolt).
At start it checks the file (both meta pages, then bbolt's consistency check
of every page) and refuses to start when it is damaged, or when it is missing
or empty although STATE_DIR/state.db.created or a backup shows it ran there
before. While running it writes a consistent backup every
--state-backup-interval (and one at shutdown) to STATE_DIR/backups, keeping
the newest 3.

repair moves the damaged file aside (state.db.damaged-TIME, never deleted),
starts from the newest backup that passes the check, writes over it every key
it can still read from the damaged file, and says what it kept and what was
lost. check, backup and repair need the controller stopped: it holds the file
locked while it runs.

Flags:
`

// stateAdmin runs the state subcommands: 0 when all is well, 1 when the
// database is damaged or the operation failed, 2 for a usage error.
func stateAdmin(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("controller state", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, stateAbout+fs.FlagUsages()) }
	stateDir := fs.String("state-dir", "", "the controller's state directory, holding state.db")
	to := fs.String("to", "", "with backup: the file to write (default a rolling backup in STATE_DIR/backups)")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		return 2
	}
	if *stateDir == "" || fs.NArg() != 1 || (*to != "" && fs.Arg(0) != "backup") {
		fs.Usage()
		return 2
	}
	path := filepath.Join(*stateDir, "state.db")
	switch fs.Arg(0) {
	case "check":
		return stateCheck(path, stdout, stderr)
	case "backup":
		out, err := statedb.BackupFile(path, *to)
		if err != nil {
			fmt.Fprintf(stderr, "controller: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "backed up %s to %s\n", path, out)
		return 0
	case "repair":
		r, err := statedb.Repair(path)
		fmt.Fprint(stdout, r)
		if err != nil {
			fmt.Fprintf(stderr, "controller: repairing %s: %v\n", path, err)
			return 1
		}
		return 0
	}
	fs.Usage()
	return 2
}

// stateCheck reports on the database and each backup, so the operator
// sees before a repair which backup it would restore.
func stateCheck(path string, stdout, stderr io.Writer) int {
	status := 0
	h, err := statedb.Check(path)
	var damaged *statedb.DamagedError
	switch {
	case errors.As(err, &damaged):
		fmt.Fprintf(stderr, "controller: %v\n", err)
		status = 1
	case err != nil:
		fmt.Fprintf(stderr, "controller: checking %s: %v\n", path, err)
		return 1
	case h.New:
		fmt.Fprintf(stdout, "%s: none yet (a fresh state directory: the controller will create it)\n", path)
	default:
		fmt.Fprintf(stdout, "%s: sound, at transaction %d: %s\n", path, h.Txid, statedb.KeyCounts(h.Keys))
	}
	backups, err := statedb.Backups(path)
	if err != nil {
		fmt.Fprintf(stderr, "controller: listing the backups: %v\n", err)
		return 1
	}
	for _, b := range backups {
		if h, err := statedb.CheckFile(b); err != nil {
			fmt.Fprintf(stdout, "backup %s: damaged: %v\n", b, err)
		} else {
			fmt.Fprintf(stdout, "backup %s: sound, at transaction %d: %s\n", b, h.Txid, statedb.KeyCounts(h.Keys))
		}
	}
	if len(backups) == 0 {
		fmt.Fprintln(stdout, "no backups yet")
	}
	return status
}
