package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Where a staging-mode command under Bwrap sees its build directory and
// DESTDIR. They are outside anything a chunk installs, so no artifact can
// hide them.
const (
	sandboxBuildDir = "/distbuild/build"
	sandboxDestDir  = "/distbuild/install"
)

// isolation is what every sandbox leaves behind: network, IPC, other
// processes and the host name. The sandbox dies with the worker.
//
// The terminal is left behind too, but not with --new-session: Run starts
// bubblewrap in a session of its own instead (no controlling terminal, so
// no TIOCSTI keystrokes into the worker's). bubblewrap's --new-session
// would move the sandbox's init out of the process group that Run kills,
// before that init has armed --die-with-parent: a sandbox stopped at that
// moment of its start-up would outlive Run, its command and all.
//
// A worker running as root would give its sandboxes all of root's
// capabilities, several of which leave any sandbox: CAP_SYS_ADMIN remounts
// the read-only parts of its view (the staging area, whose files are hard
// links to the trees the worker keeps unpacked; the host) writable,
// CAP_DAC_READ_SEARCH opens host files by handle, CAP_MKNOD makes a node
// for the host's disk, CAP_SYS_MODULE loads kernel code. So every
// capability is dropped and only rootCapabilities given back: what a
// build or an install run as root needs, the file-owning and id-changing
// ones (container runtimes' default set, less CAP_MKNOD, since the worker
// itself makes the device nodes chunks declare, and CAP_NET_RAW, since
// the sandbox has no network). An unprivileged worker's sandboxes get
// none: bubblewrap runs them in a user namespace of their own, where
// those capabilities would own nothing of the host anyway.
var isolation = []string{
	"--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
	"--die-with-parent", "--cap-drop", "ALL",
}

// rootCapabilities are the capabilities a root worker's sandboxes keep.
var rootCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE",
}

// capabilityArgs gives a sandbox rootCapabilities when the worker runs as
// root (see isolation).
func capabilityArgs() []string {
	if os.Geteuid() != 0 {
		return nil
	}
	var args []string
	for _, c := range rootCapabilities {
		args = append(args, "--cap-add", c)
	}
	return args
}

// ownRoot names the staging area's top-level entries that a staging-mode
// sandbox provides itself.
var ownRoot = map[string]bool{"proc": true, "dev": true, "tmp": true, "distbuild": true}

// bwrapArgs gives bubblewrap's arguments for s, which validate accepted.
func (s Spec) bwrapArgs() ([]string, error) {
	args := append(slices.Clone(isolation), capabilityArgs()...)
	if s.Root != "" {
		args = append(args, "--bind", s.Root, "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/")
	} else if s.rootIsStaging() {
		if err := checkShell(s.Staging); err != nil {
			return nil, fmt.Errorf("staging area has no /bin/sh: a staging-mode chunk needs its build-depends to provide a shell (or use build-mode: bootstrap): %w", err)
		}
		root, err := stagingRoot(s.Staging)
		if err != nil {
			return nil, err
		}
		args = append(append(args, root...),
			"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
			"--bind", s.BuildDir, sandboxBuildDir, "--bind", s.DestDir, sandboxDestDir,
			"--remount-ro", "/", "--chdir", sandboxBuildDir)
	} else {
		args = append(args, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp")
		// After --tmpfs /tmp, so that directories under /tmp stay visible.
		if s.Staging != "" {
			args = append(args, "--ro-bind", s.Staging, s.Staging)
		}
		args = append(args, "--bind", s.BuildDir, s.BuildDir, "--bind", s.DestDir, s.DestDir, "--chdir", s.BuildDir)
	}
	return append(args, "/bin/sh", "-c", s.Command), nil
}

// stagingRoot mounts the staging area's top-level entries read-only on
// bubblewrap's own root rather than binding the staging area itself at /:
// bubblewrap must create mount points (/proc, /distbuild/build), which
// would fail in a read-only bind and would change the staging area in a
// writable one. The root itself is made read-only afterwards.
func stagingRoot(staging string) ([]string, error) {
	entries, err := os.ReadDir(staging)
	if err != nil {
		return nil, err
	}
	var args []string
	for _, e := range entries {
		if ownRoot[e.Name()] {
			continue
		}
		host, inside := filepath.Join(staging, e.Name()), "/"+e.Name()
		if e.Type()&os.ModeSymlink == 0 {
			args = append(args, "--ro-bind", host, inside)
			continue
		}
		target, err := os.Readlink(host)
		if err != nil {
			return nil, err
		}
		args = append(args, "--symlink", target, inside)
	}
	return args, nil
}
