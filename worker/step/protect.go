package step

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A staging area made by linker holds the kept trees' own inodes, so a
// build that could write to it would change every later step staging the
// same artifacts. What keeps builds from doing so:
//
//   - under bubblewrap, the sandbox mounts the staging area read-only (it
//     is the read-only root of a staging-mode command, and under the
//     read-only host root for the others); hard links cannot cross from a
//     read-only mount to the writable build directory or DESTDIR, and the
//     sandbox cannot remount (it has no CAP_SYS_ADMIN);
//   - with --sandbox=none, the worker bind-mounts the staging area
//     read-only over itself for the step, when it may mount (as root);
//   - a system's root, which integration commands write to, is an overlay
//     whose lower layer is the linked tree: writes copy files up into the
//     step's own upper layer.
//
// A worker that may not mount stages by unpacking afresh wherever the
// sandbox alone cannot make the staged files read-only: a private copy per
// step, as before staging by linking.

// mountReadOnly bind-mounts dir read-only over itself and returns how to
// undo it.
func mountReadOnly(dir string) (func() error, error) {
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind-mounting %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		unmount(dir)
		return nil, fmt.Errorf("making %s read-only: %w", dir, err)
	}
	return func() error { return unmount(dir) }, nil
}

// mountOverlay mounts an overlay of lower under upper at target, with work
// as overlayfs's work directory (on upper's file system), and returns how
// to undo it.
func mountOverlay(lower, upper, work, target string) (func() error, error) {
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, `,:\`) {
			return nil, fmt.Errorf("cannot give overlayfs the path %q: it has a ',', ':' or '\\'", p)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("mounting an overlay at %s: %w", target, err)
	}
	return func() error { return unmount(target) }, nil
}

// unmount detaches the mount at dir, at once even when something still
// uses it.
func unmount(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting %s: %w", dir, err)
	}
	return nil
}

// mountable reports whether this process may make the mounts above in
// dir: the read-only bind mount and the overlay, by trying them.
func mountable(dir string) (bind, overlay bool) {
	probe, err := os.MkdirTemp(dir, ".mount-probe-")
	if err != nil {
		return false, false
	}
	defer os.RemoveAll(probe)
	undo, err := mountReadOnly(probe)
	if err != nil {
		return false, false
	}
	bind = undo() == nil
	layers := []string{"lower", "upper", "work", "root"}
	for _, l := range layers {
		if err := os.Mkdir(filepath.Join(probe, l), 0o755); err != nil {
			return bind, false
		}
	}
	undo, err = mountOverlay(filepath.Join(probe, "lower"), filepath.Join(probe, "upper"), filepath.Join(probe, "work"), filepath.Join(probe, "root"))
	if err != nil {
		return bind, false
	}
	return bind, undo() == nil
}

// unmountUnder detaches every mount at or below dir, deepest first: those
// a worker that died left on its job directories.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountinfo(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := unmount(points[i]); err != nil {
			return err
		}
	}
	return nil
}

// unescapeMountinfo undoes /proc/self/mountinfo's octal escapes (\040 for
// a space) in a path.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return filepath.Clean(b.String())
}
