package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"distbuild/digest"
)

// reconcile makes the directory and the index agree after whatever
// happened while the store was closed: a crash mid-upload, mid-eviction or
// mid-quarantine, or someone deleting or damaging files by hand.
//
//   - Files in tmp/ are uploads that never finished: deleted.
//   - A blob file the index does not name (an upload renamed into place
//     just before a crash, or an eviction whose deletion was lost) is
//     adopted if its content hashes to its name, else quarantined.
//   - A blob file whose size differs from the index is quarantined.
//   - An index entry without a file is dropped, with the manifests naming
//     it.
//
// It reads no blob's content except an unindexed one's, so opening a large
// store is quick; missing block checksums are made on a blob's first read.
func (s *Store) reconcile() error {
	if err := s.removeTemporaries(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	onDisk := map[digest.Hash]bool{}
	var wrongSize []digest.Hash
	for i := 0; i < 256; i++ {
		shard := filepath.Join(s.dirs.blobsDir(), fmt.Sprintf("%02x", i))
		entries, err := os.ReadDir(shard)
		if err != nil {
			return err
		}
		for _, e := range entries {
			path := filepath.Join(shard, e.Name())
			h, err := digest.ParseHash(e.Name())
			if err != nil || s.dirs.blobPath(h) != path || !e.Type().IsRegular() {
				s.log.Warn("unexpected file in the blob directory; leaving it alone", "path", path)
				continue
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			entry, known := s.cat.blobs[h]
			switch {
			case known && entry.size == info.Size():
				onDisk[h] = true
			case known:
				s.log.Error("blob file has the wrong size", "hash", h, "want", entry.size, "have", info.Size())
				wrongSize = append(wrongSize, h)
			default:
				if err := s.adoptLocked(h, path); err != nil {
					return err
				}
				onDisk[h] = true
			}
		}
	}
	var lost []digest.Hash
	for h := range s.cat.blobs {
		if !onDisk[h] && !slices.Contains(wrongSize, h) {
			lost = append(lost, h)
		}
	}
	if len(lost) > 0 {
		dropped, err := s.forgetBlobsLocked(lost)
		if err != nil {
			return err
		}
		s.log.Error("blobs named by the index are missing from disk; forgot them", "blobs", len(lost), "manifests_dropped", dropped)
	}
	for _, h := range wrongSize {
		if _, err := s.quarantineLocked(h, "file has the wrong size"); err != nil {
			return err
		}
	}
	return nil
}

// adoptLocked takes in a blob file the index does not name, if its content
// matches its name.
func (s *Store) adoptLocked(h digest.Hash, path string) error {
	d, sums, err := hashFile(path)
	if err != nil {
		return err
	}
	if d.Hash() != h {
		s.log.Error("unindexed blob file does not match its name; quarantining it", "hash", h, "content_hash", d.Hash())
		return s.moveToQuarantine(h)
	}
	if err := s.ix.putBlob(d, sums, s.now()); err != nil {
		return err
	}
	s.cat.addBlob(d, s.now())
	s.log.Info("adopted blob file missing from the index", "digest", d)
	return nil
}

func (s *Store) removeTemporaries() error {
	entries, err := os.ReadDir(s.dirs.tmpDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(s.dirs.tmpDir(), e.Name())
		if err := os.RemoveAll(path); err != nil {
			return err
		}
		s.log.Info("removed unfinished upload", "path", path)
	}
	return nil
}

// hashFile reads a file for its digest and its block checksums.
func hashFile(path string) (digest.Digest, blockChecksums, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest.Digest{}, blockChecksums{}, err
	}
	defer f.Close()
	d, sums, err := hashContent(context.Background(), f)
	if err != nil {
		return digest.Digest{}, nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return d, sums, nil
}
