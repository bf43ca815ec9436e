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
	root, err = checkoutRoot(filepath.Dir(abs))
	if err != nil {
		return "", "", fmt.Errorf("%s is not inside a definitions checkout (no VERSION file in any directory above it)", morphPath)
	}
	if rel, err = filepath.Rel(root, abs); err != nil {
		return "", "", err
	}
	return root, filepath.ToSlash(rel), nil
}

// checkoutRoot finds the root of the definitions checkout dir is in: the
// nearest directory at or above it holding a VERSION file.
func checkoutRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "VERSION")); err == nil {
			return d, nil
		}
		if parent := filepath.Dir(d); parent == d {
			return "", fmt.Errorf("%s is not inside a definitions checkout (no VERSION file in any directory above it)", dir)
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
