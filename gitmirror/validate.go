package gitmirror

import (
	"fmt"
	"io/fs"
	"strings"
)

// checkCommit refuses anything but a full commit id, so that user text never
// reaches git as an option, a revision expression or an abbreviated id that
// could later become ambiguous.
func checkCommit(commit string) error {
	if !isCommitID(commit) {
		return fmt.Errorf("invalid commit %q: want 40 lower-case hex digits", commit)
	}
	return nil
}

func isCommitID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkURL refuses URLs git could read as an option and ones whose control
// characters would garble git's configuration and our log lines.
func checkURL(url string) error {
	switch {
	case url == "":
		return fmt.Errorf("empty repository URL")
	case strings.HasPrefix(url, "-"):
		return fmt.Errorf("invalid repository URL %q: starts with '-'", url)
	case hasControl(url):
		return fmt.Errorf("invalid repository URL %q: contains a control character", url)
	}
	return nil
}

// checkRef refuses refs git could read as an option or as a pattern or
// revision expression, keeping ResolveRef to plain branch and tag names.
func checkRef(ref string) error {
	switch {
	case ref == "":
		return fmt.Errorf("empty ref")
	case strings.HasPrefix(ref, "-"):
		return fmt.Errorf("invalid ref %q: starts with '-'", ref)
	case hasControl(ref) || strings.ContainsAny(ref, " ~^:?*[\\") || strings.Contains(ref, "..") || strings.Contains(ref, "@{"):
		return fmt.Errorf("invalid ref %q: not a branch or tag name", ref)
	}
	return nil
}

// checkSubmodulePath keeps a submodule inside the work tree: a relative,
// clean, slash-separated path that does not reach into a .git directory.
func checkSubmodulePath(p string) error {
	if !fs.ValidPath(p) || p == "." {
		return fmt.Errorf("invalid submodule path %q: want a clean relative path", p)
	}
	for elem := range strings.SplitSeq(p, "/") {
		if strings.EqualFold(elem, ".git") {
			return fmt.Errorf("invalid submodule path %q: names a .git directory", p)
		}
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
