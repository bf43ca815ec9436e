// Package initiator is the command developers run inside a definitions
// checkout: it shows what a system's build graph looks like, submits builds
// to the controller and follows them, and looks after builds already
// running (attach, list, status, cancel, logs).
package initiator

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"distbuild/definitions"
	"distbuild/internal/version"
)

// Exit statuses, so scripts can tell a usage mistake from a failure.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// command is one subcommand of the initiator.
type command struct {
	summary string
	run     func(env *Env, args []string) int
}

var commands = map[string]command{
	"graph":      {summary: "print a system's build steps, cache keys and dependencies (offline)", run: runGraph},
	"lint":       {summary: "check definitions strictly: every error and warning, with file and line (for CI)", run: runLint},
	"build":      {summary: "build a system on the farm, following its progress", run: runBuild},
	"fetch":      {summary: "download an artifact from the cache and unpack it", run: runFetch},
	"attach":     {summary: "re-join a build: replay its events and follow it", run: runAttach},
	"list":       {summary: "list the farm's builds, newest first", run: runList},
	"status":     {summary: "show a build and the state of each of its steps", run: runStatus},
	"cancel":     {summary: "cancel a build", run: runCancel},
	"logs":       {summary: "print a step's complete log from the cache", run: runLogs},
	"verify":     {summary: "check an artifact's signature and every blob's digest", run: runVerify},
	"provenance": {summary: "print how an artifact was made, verifying its signed provenance", run: runProvenance},
	"workers":    {summary: "list the workers connected to the controller, their slots and jobs", run: runWorkers},
	"timeline":   {summary: "write a build's Gantt chart as SVG: a lane per worker slot, a bar per step", run: runTimeline},
}

// Env is what a command may touch of the outside world, so tests can run
// commands in-process with their own directory and output.
type Env struct {
	Dir    string
	Stdout io.Writer
	Stderr io.Writer
}

// Main runs the initiator with the arguments after the program name and
// returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "initiator: %v\n", err)
		return ExitFailure
	}
	env := &Env{Dir: dir, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	if args[0] == "--version" || args[0] == "version" {
		version.Print(stdout, "initiator")
		return ExitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "initiator: unknown command %q\n\n", args[0])
		usage(stderr)
		return ExitUsage
	}
	return cmd.run(env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: initiator COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ninitiator works with the distbuild build farm from inside a definitions checkout.")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\n"+credentialsHelp)
	fmt.Fprintln(w, "\nRun 'initiator COMMAND --help' for a command's flags.")
}

// newFlags makes a subcommand's flag set, with a usage text that shows the
// argument synopsis and what the command is for.
func newFlags(env *Env, name, synopsis, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: initiator %s %s\n\n%s\n\nFlags:\n%s", name, synopsis, about, fs.FlagUsages())
	}
	return fs
}

// parseFlags parses args and says whether the command should go on; when it
// should not, status is the exit status to return.
func parseFlags(fs *pflag.FlagSet, args []string) (ok bool, status int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return false, ExitOK
		}
		fmt.Fprintf(fs.Output(), "initiator %s: %v\n", fs.Name(), err)
		return false, ExitUsage
	}
	return true, ExitOK
}

// fail reports err and returns the failure status. Definitions errors
// already say file and line, so they are printed as they are.
func fail(env *Env, cmd string, err error) int {
	var de *definitions.Error
	if errors.As(err, &de) {
		fmt.Fprintf(env.Stderr, "initiator %s: %s\n", cmd, strings.TrimSpace(de.Error()))
	} else {
		fmt.Fprintf(env.Stderr, "initiator %s: %v\n", cmd, err)
	}
	return ExitFailure
}
