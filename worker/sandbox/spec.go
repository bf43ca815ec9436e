package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

// defaultKillGrace is how long a stopped command has to exit after SIGTERM
// when Spec.KillGrace is zero: enough for make to remove half-written
// targets, short enough that a cancelled job frees its worker promptly.
const defaultKillGrace = 5 * time.Second

// Spec is one build command and everything it runs with.
type Spec struct {
	// Mode is the worker's isolation.
	Mode Mode
	// Root, when set, makes this a system-integration command: it runs
	// with Root, an assembled system, as its whole root file system and may
	// change anything in it. Under Bwrap it gets its own /proc, /dev and
	// /tmp and no network; under None it runs through chroot, which needs
	// root. BuildMode, Staging, BuildDir and DestDir are then left unset.
	Root string
	// BuildMode is the chunk's build-mode, as the job carries it: staging
	// runs on the staging area as root file system (under Bwrap);
	// bootstrap and test run with the host's tools, since they build or
	// test the very first tools.
	BuildMode pb.BuildMode
	// Staging is the staging area: an absolute path to a directory holding
	// the chunk's build-depends unpacked. Required for staging mode under
	// Bwrap, where it is the read-only root except that /proc, /dev, /tmp
	// and /distbuild are the sandbox's own; otherwise, when set, it is
	// visible read-only at its own path.
	Staging string
	// BuildDir is the source checkout and the command's working directory:
	// under Bwrap, one of only two places it may write. Absolute.
	BuildDir string
	// DestDir is where the command installs, the other writable place.
	// Absolute.
	DestDir string
	// Env is the command's whole environment: nil means empty, never the
	// worker's own, which would leak into artifacts. Paths in it must be
	// as the command sees them (Paths), and host-tools steps need
	// StagingEnv.
	Env []string
	// Command is the shell command line, run with sh -c.
	Command string
	// Stdout and Stderr receive the command's output as it is produced;
	// they are never written concurrently, so one writer may serve both.
	// Nil discards.
	Stdout, Stderr io.Writer
	// Timeout, when positive, stops a command that runs longer (ErrTimeout).
	Timeout time.Duration
	// NoOutputTimeout, when positive, stops a command that writes nothing
	// for that long (ErrStalled): a hung test suite is caught long before
	// a generous Timeout.
	NoOutputTimeout time.Duration
	// Started, when set, is called with the command's process id as soon
	// as it runs (before Run returns), so the caller can watch its process
	// tree in /proc while it runs.
	Started func(pid int)
	// KillGrace is how long a command being stopped has between SIGTERM and
	// SIGKILL, and how long a finished command's background processes may
	// hold its output open; zero means five seconds.
	KillGrace time.Duration
}

// Paths returns the build directory and DESTDIR as the command sees them,
// for setting DESTDIR and any other path in Env: a staging-mode command
// under Bwrap sees them at fixed places in its own root file system.
func (s Spec) Paths() (buildDir, destDir string) {
	if s.rootIsStaging() {
		return sandboxBuildDir, sandboxDestDir
	}
	return s.BuildDir, s.DestDir
}

// HostTools reports whether the command runs with the host's tools rather
// than the staging area's, so it needs StagingEnv to find its build-depends.
func (s Spec) HostTools() bool { return !s.rootIsStaging() }

func (s Spec) rootIsStaging() bool {
	return s.Mode == Bwrap && s.BuildMode == pb.BuildMode_BUILD_MODE_STAGING
}

func (s Spec) killGrace() time.Duration {
	if s.KillGrace > 0 {
		return s.KillGrace
	}
	return defaultKillGrace
}

// validate checks everything Run can check before starting anything.
func (s Spec) validate() error {
	if _, err := ParseMode(string(s.Mode)); err != nil {
		return err
	}
	if strings.TrimSpace(s.Command) == "" {
		return errors.New("empty command")
	}
	if s.Timeout < 0 || s.NoOutputTimeout < 0 || s.KillGrace < 0 {
		return errors.New("negative timeout or kill grace")
	}
	if s.Root != "" {
		if s.BuildMode != pb.BuildMode_BUILD_MODE_UNSPECIFIED || s.Staging != "" || s.BuildDir != "" || s.DestDir != "" {
			return errors.New("a system-integration command takes a root, not a build mode, staging area, build directory or DESTDIR")
		}
		if err := checkDir("system root", s.Root); err != nil {
			return err
		}
		if err := checkShell(s.Root); err != nil {
			return fmt.Errorf("system-integration needs /bin/sh in the system, and it has none: %w", err)
		}
		return nil
	}
	switch s.BuildMode {
	case pb.BuildMode_BUILD_MODE_STAGING, pb.BuildMode_BUILD_MODE_BOOTSTRAP, pb.BuildMode_BUILD_MODE_TEST:
	default:
		return fmt.Errorf("unknown build mode %v (want staging, bootstrap or test)", s.BuildMode)
	}
	for _, d := range []struct {
		what, dir string
		required  bool
	}{
		{"build directory", s.BuildDir, true},
		{"DESTDIR", s.DestDir, true},
		{"staging area", s.Staging, s.rootIsStaging()},
	} {
		if d.dir == "" && !d.required {
			continue
		}
		if err := checkDir(d.what, d.dir); err != nil {
			return err
		}
	}
	return nil
}

// checkDir checks that dir, the spec's what, is an absolute path to a
// directory.
func checkDir(what, dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s %q is not an absolute path", what, dir)
	}
	if info, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if !info.IsDir() {
		return fmt.Errorf("%s %s is not a directory", what, dir)
	}
	return nil
}
