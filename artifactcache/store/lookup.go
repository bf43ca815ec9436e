package store

import "distbuild/digest"

// FindMissing returns the blobs and manifests the store does not hold, in
// request order. Those it holds count as used: a client asking is about to
// rely on them, so they should not be the next thing evicted.
func (s *Store) FindMissing(blobs []digest.Digest, keys []digest.CacheKey) ([]digest.Digest, []digest.CacheKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var missingBlobs []digest.Digest
	for _, d := range blobs {
		if s.cat.hasBlob(d) {
			s.cat.touchBlob(d.Hash(), now)
		} else {
			missingBlobs = append(missingBlobs, d)
		}
	}
	var missingKeys []digest.CacheKey
	for _, k := range keys {
		if _, ok := s.cat.manifests[k]; ok {
			s.cat.touchManifest(k, now)
		} else {
			missingKeys = append(missingKeys, k)
		}
	}
	return missingBlobs, missingKeys
}

// Lookup finds a blob by hash alone, for the HTTP API whose URLs carry no
// size.
func (s *Store) Lookup(h digest.Hash) (digest.Digest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cat.blobs[h]
	if !ok {
		return digest.Digest{}, false
	}
	d, err := digest.New(h, e.size)
	return d, err == nil
}
