package store

import (
	"os"
	"time"

	"distbuild/digest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// evictQueueMax is how many victims, least recently used first, one
// listing keeps for the evictions that follow it.
const evictQueueMax = 1024

// makeRoomLocked evicts least recently used artifacts until extra more
// bytes fit under the size limit, counting uploads in progress. Uploads
// call it for each piece of content before writing it, so the store never
// exceeds its limit on disk and never evicts for bytes nobody has sent.
//
// Listing victims means sorting the whole catalog, too slow to do for each
// mebibyte of an upload into a full cache, so one listing is kept in
// s.evictQueue and consumed by later calls; each victim is checked again
// (still there, unused and unpinned since it was listed) when its turn
// comes, and the catalog is listed afresh once the queue runs dry.
func (s *Store) makeRoomLocked(extra int64) error {
	if s.maxSize <= 0 {
		return nil
	}
	listed := false // whether the queue was just listed afresh
	for {
		need := s.cat.used + s.cat.reserved + extra - s.maxSize
		if need <= 0 {
			return nil
		}
		var chosen []victim
		var freed int64
		for freed < need && len(s.evictQueue) > 0 {
			v := s.evictQueue[0]
			s.evictQueue = s.evictQueue[1:]
			if s.cat.stillEvictable(v) {
				chosen = append(chosen, v)
				freed += v.bytes
			}
		}
		if len(chosen) == 0 {
			if listed {
				return status.Errorf(codes.ResourceExhausted,
					"cache full: %d bytes stored and %d being uploaded of %d; the rest is in use by readers, so %d more bytes do not fit; retry later or raise the trove's --max-size",
					s.cat.used, s.cat.reserved, s.maxSize, extra)
			}
			s.evictQueue = s.cat.victims(evictQueueMax)
			listed = true
			continue
		}
		if err := s.evictLocked(chosen); err != nil {
			return status.Errorf(codes.Internal, "evict: %v", err)
		}
		listed = false
	}
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
		s.cat.evictions++
		s.cat.evictedBytes += v.bytes
		lastUse := time.Unix(0, v.lastAccess).UTC()
		if v.manifest != nil {
			s.log.Info("evicted artifact", "cache_key", *v.manifest, "blobs", len(v.blobs), "bytes", v.bytes, "last_used", lastUse)
		} else {
			s.log.Info("evicted blob", "hash", v.blobs[0], "bytes", v.bytes, "last_used", lastUse)
		}
	}
	return nil
}
