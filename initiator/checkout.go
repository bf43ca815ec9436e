package initiator

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// findDefinitions locates the root of the definitions checkout holding the
// morph at morphPath (relative to dir), so a command works from any
// directory inside the checkout. It returns the root and the morph's path
// relative to it, in the slash-separated form definitions use.
func findDefinitions(dir, morphPath string) (root, rel string, err error) {
	abs := morphPath
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, morphPath)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", "", fmt.Errorf("%s: %w", morphPath, unwrapStat(err))
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "VERSION")); err == nil {
			rel, err := filepath.Rel(d, abs)
			if err != nil {
				return "", "", err
			}
			return d, filepath.ToSlash(rel), nil
		}
		if parent := filepath.Dir(d); parent == d {
			return "", "", fmt.Errorf("%s is not inside a definitions checkout (no VERSION file in any directory above it)", morphPath)
		}
	}
}

func unwrapStat(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		return pe.Err
	}
	return err
}
