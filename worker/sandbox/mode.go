package sandbox

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
)

// Mode is how a worker isolates build commands, chosen once per worker: a
// worker that cannot run bubblewrap (some containers forbid the namespaces
// it needs) can still build, without isolation.
type Mode string

const (
	// None runs commands directly on the host in their build directory:
	// nothing stops a build using undeclared host tools or the network.
	None Mode = "none"
	// Bwrap runs each command in a bubblewrap sandbox.
	Bwrap Mode = "bwrap"
)

// ParseMode reads a mode as written in configuration or on a command line.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case None, Bwrap:
		return m, nil
	}
	return "", fmt.Errorf("unknown sandbox %q (want %s or %s)", s, Bwrap, None)
}

// Available reports whether commands can run in mode m here, so a worker
// can refuse to start rather than fail every job. For Bwrap it runs a
// trivial sandbox with the same isolation as a build.
func Available(m Mode) error {
	if _, err := ParseMode(string(m)); err != nil || m == None {
		return err
	}
	bwrap, err := lookBwrap()
	if err != nil {
		return err
	}
	args := append(slices.Clone(isolation), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true")
	if out, err := exec.Command(bwrap, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("sandbox bwrap: %s cannot make a sandbox here (%v): %s", bwrap, err, bytes.TrimSpace(out))
	}
	return nil
}

func lookBwrap() (string, error) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return "", fmt.Errorf("sandbox bwrap: bubblewrap is not installed (%w): install the bubblewrap package, or use sandbox %s", err, None)
	}
	return bwrap, nil
}
