package store

import (
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/protobuf/proto"
)

// load builds the in-memory catalog from the index. Entries that break
// the store's invariants (a manifest naming a blob the index lacks, an
// access time or checksums for nothing) can only come from a bug or a
// damaged index; they are dropped so the invariants hold again.
func (s *Store) load() error {
	contents, err := s.ix.load()
	if err != nil {
		return err
	}
	now := s.now()
	cat := newCatalog()
	for h, size := range contents.blobSizes {
		at, ok := contents.blobAccess[h]
		if !ok {
			at = now
		}
		// A damaged size is kept as is: reconcile compares it with the
		// file and quarantines the blob.
		cat.blobs[h] = &blobEntry{size: size, lastAccess: at}
		cat.used += size
	}
	stale := map[digest.Hash]bool{}
	for h := range contents.blobAccess {
		stale[h] = true
	}
	for h := range contents.checksummed {
		stale[h] = true
	}
	var staleBlobs []digest.Hash
	for h := range stale {
		if _, ok := contents.blobSizes[h]; !ok {
			staleBlobs = append(staleBlobs, h)
		}
	}
	var staleManifests []digest.CacheKey
	for k, raw := range contents.manifests {
		hashes, ok := storedManifestBlobs(k, raw, cat)
		if !ok {
			staleManifests = append(staleManifests, k)
			continue
		}
		at, ok := contents.manifestAccess[k]
		if !ok {
			at = now
		}
		cat.addManifest(k, hashes, at)
	}
	for k := range contents.manifestAccess {
		if _, ok := contents.manifests[k]; !ok {
			staleManifests = append(staleManifests, k)
		}
	}
	s.cat = cat
	if len(staleBlobs) > 0 || len(staleManifests) > 0 {
		s.log.Warn("index had inconsistent entries; dropping them", "blob_records", len(staleBlobs), "manifests", len(staleManifests))
		return s.ix.remove(staleBlobs, staleManifests)
	}
	return nil
}

// storedManifestBlobs decodes a stored manifest and checks it against the
// catalog loaded so far.
func storedManifestBlobs(k digest.CacheKey, raw []byte, cat *catalog) ([]digest.Hash, bool) {
	m := &distbuildv1.Manifest{}
	if proto.Unmarshal(raw, m) != nil {
		return nil, false
	}
	key, files, err := CheckManifest(m)
	if err != nil || key != k {
		return nil, false
	}
	for _, d := range files {
		if !cat.hasBlob(d) {
			return nil, false
		}
	}
	return uniqueHashes(files), true
}
