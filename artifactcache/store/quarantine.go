package store

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"distbuild/digest"
)

// quarantineOpened quarantines a blob found corrupt through an open file,
// unless that file is no longer the one under the blob's name: a blob can
// be quarantined by a concurrent reader and uploaded again meanwhile, and
// the good new copy must not pay for the old one.
func (s *Store) quarantineOpened(d digest.Digest, f *os.File, reason string) ([]digest.CacheKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cat.hasBlob(d) {
		return nil, nil
	}
	opened, err := f.Stat()
	if err != nil {
		return nil, err
	}
	current, err := os.Stat(s.dirs.blobPath(d.Hash()))
	if err != nil || !os.SameFile(opened, current) {
		return nil, nil
	}
	return s.quarantineLocked(d.Hash(), reason)
}

// quarantineLocked forgets a corrupt blob and every manifest naming it, so
// the steps that made them are rebuilt, and moves the file aside for a
// person to examine rather than deleting the evidence.
func (s *Store) quarantineLocked(h digest.Hash, reason string) ([]digest.CacheKey, error) {
	dropped, err := s.forgetBlobsLocked([]digest.Hash{h})
	if err != nil {
		return nil, err
	}
	if err := s.moveToQuarantine(h); err != nil {
		return dropped, err
	}
	s.log.Error("quarantined corrupt blob", "hash", h, "reason", reason, "manifests_dropped", dropped)
	return dropped, nil
}

// moveToQuarantine renames a blob file into the quarantine directory. The
// name says when, and a random suffix keeps an earlier quarantine of the
// same blob from being overwritten.
func (s *Store) moveToQuarantine(h digest.Hash) error {
	dst := filepath.Join(s.dirs.quarantineDir(), fmt.Sprintf("%s.%d.%s", h, s.now(), rand.Text()))
	if err := os.Rename(s.dirs.blobPath(h), dst); err != nil {
		return fmt.Errorf("quarantine blob %s: %w", h, err)
	}
	if err := syncDir(s.dirs.quarantineDir()); err != nil {
		return err
	}
	return syncDir(s.dirs.shardDir(h))
}
