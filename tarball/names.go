package tarball

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// cleanName turns an entry name into a slash-separated path relative to the
// destination ("." for the destination itself), refusing any name that
// could reach outside it.
func cleanName(name string) (string, error) {
	if path.IsAbs(name) {
		return "", errors.New("name is an absolute path")
	}
	n := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	switch {
	case n == "" || n == ".":
		return ".", nil
	case slices.Contains(splitPath(n), ".."):
		return "", errors.New(`name has a ".." component`)
	case !fs.ValidPath(n):
		return "", errors.New("name is not a clean relative path")
	}
	return n, nil
}

// checkSymlinkTarget refuses a symlink at name whose target, taken
// lexically from name's directory, leads out of the destination. Absolute
// targets pass: a staging area or system image is a root file system, in
// which "/usr/lib/libz.so.1" names a path inside it.
func checkSymlinkTarget(name, target string) error {
	switch {
	case target == "":
		return errors.New("symlink has an empty target")
	case path.IsAbs(target):
		return nil
	}
	if t := path.Join(path.Dir(name), target); t == ".." || strings.HasPrefix(t, "../") {
		return fmt.Errorf("symlink target %q leads outside the destination", target)
	}
	return nil
}

// splitPath gives the components of a clean relative path; "." has none.
func splitPath(p string) []string {
	if p == "." {
		return nil
	}
	return strings.Split(p, "/")
}
