package store

import (
	"os"
	"time"

	"distbuild/artifactcache/digest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// makeRoomLocked evicts least recently used artifacts until extra more
// bytes fit under the size limit, counting uploads in progress. Eviction
// happens before an upload starts, so the store never exceeds its limit on
// disk, and an upload that cannot fit is refused before a byte is sent.
func (s *Store) makeRoomLocked(extra int64) error {
	if s.maxSize <= 0 {
		return nil
	}
	for s.cat.used+s.cat.reserved+extra > s.maxSize {
		need := s.cat.used + s.cat.reserved + extra - s.maxSize
		var chosen []victim
		var freed int64
		for _, v := range s.cat.victims() {
			chosen = append(chosen, v)
			if freed += v.bytes; freed >= need {
				break
			}
		}
		if len(chosen) == 0 {
			return status.Errorf(codes.ResourceExhausted,
				"cache full: %d bytes stored and %d being uploaded of %d; the rest is in use by readers, so %d more bytes do not fit",
				s.cat.used, s.cat.reserved, s.maxSize, extra)
		}
		if err := s.evictLocked(chosen); err != nil {
			return status.Errorf(codes.Internal, "evict: %v", err)
		}
	}
	return nil
}

// evictLocked removes whole units from the index and then deletes their
// files. Deletions are not followed by a directory sync: if a crash undoes
// one, the file comes back as a blob the index does not name, and Open
// adopts it again.
func (s *Store) evictLocked(vs []victim) error {
	var blobs []digest.Hash
	var manifests []digest.CacheKey
	for _, v := range vs {
		blobs = append(blobs, v.blobs...)
		if v.manifest != nil {
			manifests = append(manifests, *v.manifest)
		}
	}
	if err := s.dropLocked(blobs, manifests); err != nil {
		return err
	}
	for _, h := range blobs {
		if err := os.Remove(s.dirs.blobPath(h)); err != nil {
			s.log.Warn("deleting evicted blob file failed", "hash", h, "error", err)
		}
	}
	for _, v := range vs {
		lastUse := time.Unix(0, v.lastAccess).UTC()
		if v.manifest != nil {
			s.log.Info("evicted artifact", "cache_key", *v.manifest, "blobs", len(v.blobs), "bytes", v.bytes, "last_used", lastUse)
		} else {
			s.log.Info("evicted blob", "hash", v.blobs[0], "bytes", v.bytes, "last_used", lastUse)
		}
	}
	return nil
}
