// Package statedb keeps the controller's bbolt state database
// (STATE_DIR/state.db) trustworthy. Left to itself, bbolt starts an empty
// database on a truncated file, panics on some damaged pages, and silently
// rolls back a transaction when the newest meta page is garbage; each of
// those loses builds without a word. Here the database is checked before
// the controller opens it, and a damaged or unexpectedly empty one is
// refused with an error naming the file and the way out; rolling backups
// are taken while the controller runs; and Repair rebuilds a database from
// the newest good backup and whatever the damaged file still yields. The
// controller and `controller state check|backup|repair` share this code.
package statedb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"distbuild/internal/atomicfile"
)

// lockTimeout bounds the wait for a database another process holds: a
// running controller keeps its database locked for as long as it runs.
const lockTimeout = time.Second

// maxCheckErrors bounds the consistency errors quoted from one check; a
// badly damaged file yields thousands.
const maxCheckErrors = 5

// DamagedError says that a state database cannot be trusted, why, and
// what to do about it, so the operator needs nothing else to act.
type DamagedError struct {
	Path    string
	Problem string
}

func (e *DamagedError) Error() string {
	dir := filepath.Dir(e.Path)
	return fmt.Sprintf("state database %s: %s. The controller will not start on it: "+
		"'controller state check --state-dir %s' reports on it and its backups, and "+
		"'controller state repair --state-dir %s' restores the newest good backup plus whatever can still be read "+
		"(the damaged file is kept aside)", e.Path, e.Problem, dir, dir)
}

// Health is what a check found in a sound database.
type Health struct {
	// New is set when there is no database yet and nothing shows there
	// ever was one: a fresh state directory.
	New bool
	// Txid is the transaction the database opens at.
	Txid uint64
	// Keys counts the keys in each top-level bucket, nested ones included.
	Keys map[string]int
}

// Check tells whether the controller may open the database at path. A
// missing or zero-length file is fine in a fresh state directory, and
// damage when the marker file or a backup shows the controller ran there
// before: bbolt would quietly start an empty database. Damage is reported
// as a *DamagedError; other errors (the file is in use, unreadable) as is.
func Check(path string) (Health, error) {
	fi, err := os.Stat(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return Health{}, err
	}
	if missing || fi.Size() == 0 {
		evidence, err := ranBefore(path)
		if err != nil || evidence == "" {
			return Health{New: true}, err
		}
		what := "is empty (zero bytes)"
		if missing {
			what = "is missing"
		}
		return Health{}, &DamagedError{Path: path, Problem: what + ", but " + evidence + " shows the controller ran here before: starting empty would lose every build"}
	}
	h, problem, err := inspect(path)
	if err != nil {
		return Health{}, err
	}
	if problem != "" {
		return Health{}, &DamagedError{Path: path, Problem: problem}
	}
	return h, nil
}

// Open opens the database at path for the controller once Check finds it
// sound, and marks the state directory as used so a later loss of the
// file is noticed. No bbolt panic escapes it.
func Open(path string) (db *bolt.DB, err error) {
	if _, err := Check(path); err != nil {
		return nil, err
	}
	err = guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening the state database %s: %w", path, err)
	}
	if err := writeMarker(path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// CheckFile checks any bbolt file, such as a backup, for damage: Check
// without its judgement of a missing or empty state database.
func CheckFile(path string) (Health, error) {
	h, problem, err := inspect(path)
	if problem != "" {
		return h, errors.New(problem)
	}
	return h, err
}

// inspect checks a bbolt file's header and every page reachable from its
// newest valid meta page. problem describes damage; err is anything else.
func inspect(path string) (h Health, problem string, err error) {
	if problem, err := checkMetas(path); problem != "" || err != nil {
		return h, problem, err
	}
	var db *bolt.DB
	err = guard(func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
		return err
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return h, "", fmt.Errorf("%s is in use by another process (a running controller?)", path)
	case errors.Is(err, fs.ErrPermission):
		return h, "", err
	case err != nil:
		return h, "bbolt cannot open it: " + err.Error(), nil
	}
	defer db.Close()
	var errs []string
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				// bbolt reports a page it tripped on as "panic: ...";
				// here that is an expected finding, not a crash.
				errs = append(errs, strings.TrimPrefix(err.Error(), "panic: "))
			}
			if len(errs) > 0 {
				return nil
			}
			h.Txid, h.Keys = uint64(tx.ID()), map[string]int{}
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				h.Keys[string(name)] = b.Stats().KeyN
				return nil
			})
		})
	})
	if err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		more := ""
		if len(errs) > maxCheckErrors {
			more = fmt.Sprintf(" (and %d more)", len(errs)-maxCheckErrors)
			errs = errs[:maxCheckErrors]
		}
		return h, "the consistency check failed: " + strings.Join(errs, "; ") + more, nil
	}
	return h, "", nil
}

// guard runs f and turns a bbolt panic, its reaction to some damaged
// pages, into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt failed on a damaged page: %v", r)
		}
	}()
	return f()
}

// markerPath is the file that records that a database was created here.
func markerPath(path string) string { return path + ".created" }

func writeMarker(path string) error {
	marker := markerPath(path)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	text := fmt.Sprintf("%s was created in this directory. While this file exists the controller refuses to start\n"+
		"on a missing or empty %s instead of starting a farm with no builds; see 'controller state --help'.\n",
		filepath.Base(path), filepath.Base(path))
	if err := atomicfile.Write(marker, []byte(text), 0o600); err != nil {
		return fmt.Errorf("marking the state directory as used: %w", err)
	}
	return nil
}

// ranBefore names what shows a database existed at path, or returns "".
func ranBefore(path string) (string, error) {
	if _, err := os.Stat(markerPath(path)); err == nil {
		return markerPath(path), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	backups, err := Backups(path)
	if err != nil || len(backups) == 0 {
		return "", err
	}
	return backups[0], nil
}
