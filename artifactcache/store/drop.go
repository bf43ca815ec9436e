package store

import (
	"distbuild/digest"
)

// dropLocked forgets blobs and manifests, index first and then memory.
// Callers delete or move the blob files afterwards: a crash in between
// leaves a file the index does not name, which the next Open adopts after
// checking its hash, never an index entry without a file.
func (s *Store) dropLocked(blobs []digest.Hash, manifests []digest.CacheKey) error {
	if len(blobs) == 0 && len(manifests) == 0 {
		return nil
	}
	if err := s.ix.remove(blobs, manifests); err != nil {
		return err
	}
	for _, k := range manifests {
		s.cat.removeManifest(k)
	}
	for _, h := range blobs {
		s.cat.removeBlob(h)
	}
	return nil
}

// forgetBlobsLocked drops blobs that are lost, together with every
// manifest naming them, and returns those manifests.
func (s *Store) forgetBlobsLocked(blobs []digest.Hash) ([]digest.CacheKey, error) {
	seen := map[digest.CacheKey]bool{}
	var manifests []digest.CacheKey
	for _, h := range blobs {
		for _, k := range s.cat.manifestsUsing(h) {
			if !seen[k] {
				seen[k] = true
				manifests = append(manifests, k)
			}
		}
	}
	return manifests, s.dropLocked(blobs, manifests)
}
