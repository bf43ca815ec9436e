package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// maxSymlinks is how many symlinks resolving /bin/sh may pass, as the
// kernel allows, so a loop ends.
const maxSymlinks = 40

// checkShell returns ErrNoShell unless /bin/sh, resolved inside staging as
// the sandbox's kernel would resolve it with staging as root, is an
// executable file. Without this, a chunk whose build-depends lack a shell
// would fail with bubblewrap's bare "No such file or directory".
func checkShell(staging string) error {
	root, err := os.OpenRoot(staging)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoShell, err)
	}
	defer root.Close()
	sh, err := resolve(root, "bin/sh")
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoShell, err)
	}
	info, err := root.Lstat(sh)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoShell, err)
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w (/%s is %v, not an executable file)", ErrNoShell, sh, info.Mode())
	}
	return nil
}

// resolve follows symlinks in name within root, reading absolute targets
// and ".." at the top as the root itself, which os.Root refuses to do. It
// returns a path with no symlinks in it.
func resolve(root *os.Root, name string) (string, error) {
	todo := strings.Split(name, "/")
	var done []string
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		p := path.Join(append(done, c)...)
		info, err := root.Lstat(p)
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > maxSymlinks {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := root.Readlink(p)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return path.Join(done...), nil
}
