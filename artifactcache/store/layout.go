package store

import (
	"fmt"
	"os"
	"path/filepath"

	"distbuild/digest"
)

// The store directory holds everything the cache owns. Temporary files live
// in the same file system as the blobs so that a finished upload is moved
// into place by an atomic rename, never by a copy.
const (
	blobsDirName      = "blobs"
	tmpDirName        = "tmp"
	quarantineDirName = "quarantine"
	indexFileName     = "index.db"
)

// layout maps names to paths inside the store directory.
type layout struct{ root string }

// blobPath shards blobs by the first byte of their hash so that no single
// directory grows to hundreds of thousands of entries.
func (l layout) blobPath(h digest.Hash) string {
	s := h.String()
	return filepath.Join(l.root, blobsDirName, s[:2], s)
}

func (l layout) shardDir(h digest.Hash) string {
	return filepath.Dir(l.blobPath(h))
}

func (l layout) blobsDir() string      { return filepath.Join(l.root, blobsDirName) }
func (l layout) tmpDir() string        { return filepath.Join(l.root, tmpDirName) }
func (l layout) quarantineDir() string { return filepath.Join(l.root, quarantineDirName) }
func (l layout) indexPath() string     { return filepath.Join(l.root, indexFileName) }

// create makes every directory the store uses, including all 256 shard
// directories, up front: later renames into a shard then only need that
// shard's directory synced, never its parent.
func (l layout) create() error {
	for _, dir := range []string{l.root, l.tmpDir(), l.quarantineDir(), l.blobsDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	for i := 0; i < 256; i++ {
		if err := os.MkdirAll(filepath.Join(l.blobsDir(), fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return err
		}
	}
	for _, dir := range []string{l.blobsDir(), l.root} {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes a rename or removal in dir durable: without it, a crash
// can forget that a file was moved even though its content is on disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return d.Close()
}
