// Package atomicfile writes small files so that a reader, or a crash, sees
// either the old content or the new, never half of either: the content
// goes to a temporary file in the same directory, is synced, and is renamed
// over the target, and the directory is synced so the rename survives a
// power cut.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// Write replaces path's content with data, creating the directory if
// needed (mode 0700) and giving the file mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteWith(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteWith is Write for content too big to hold in memory (a database
// copy): write streams it into the temporary file, and the target is
// replaced only when write succeeds.
func WriteWith(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
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
	return SyncDir(dir)
}

// SyncDir makes renames and removals in dir survive a power cut.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
