// Package atomicfile writes small files so that a reader, or a crash, sees
// either the old content or the new, never half of either: the content
// goes to a temporary file in the same directory, is synced, and is renamed
// over the target, and the directory is synced so the rename survives a
// power cut.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path's content with data, creating the directory if
// needed (mode 0700) and giving the file mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
