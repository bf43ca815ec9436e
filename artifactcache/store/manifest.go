package store

import (
	"fmt"
	"strings"

	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// PutManifest stores a manifest once every blob it names is present. The
// check and the write happen under one lock, so no eviction can slip in
// between.
//
// When a manifest is already stored under the key, the attempt grants
// decide: a manifest from a later attempt (a higher grant sequence)
// replaces it, because the controller abandoned the earlier attempt (its
// worker stalled past its lease) and credits the later one; one from an
// earlier attempt is refused with FailedPrecondition, so an abandoned
// attempt's late result never overwrites the current one. Otherwise (the
// same attempt again, or manifests without grants) the first stays and this
// call succeeds without replacing it.
func (s *Store) PutManifest(m *distbuildv1.Manifest) error {
	key, files, err := CheckManifest(m)
	if err != nil {
		return err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "encode manifest %s: %v", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for busy := s.cat.storing[key]; busy != nil; busy = s.cat.storing[key] {
		s.mu.Unlock()
		<-busy // the same key from another attempt: decide after it
		s.mu.Lock()
	}
	now := s.now()
	_, replacing := s.cat.manifests[key]
	if replacing {
		old, err := s.manifestLocked(key)
		if err != nil {
			return err
		}
		if keep, err := KeepStored(key, m, old); err != nil || keep {
			if keep {
				s.cat.touchManifest(key, now)
				s.log.Debug("manifest already stored; keeping the first", "cache_key", key)
			}
			return err
		}
	}
	var missing []string
	for _, d := range files {
		if !s.cat.hasBlob(d) {
			missing = append(missing, d.String())
		}
	}
	if len(missing) > 0 {
		return status.Errorf(codes.FailedPrecondition, "manifest %s names %d blob(s) the cache does not hold; upload them first: %s",
			key, len(missing), strings.Join(firstFew(missing), ", "))
	}
	hashes := uniqueHashes(files)
	if err := s.writeManifestUnlocked(key, raw, hashes, now); err != nil {
		return err
	}
	if replacing {
		s.cat.removeManifest(key)
		s.log.Info("a later attempt's manifest replaces an abandoned one's", "cache_key", key, "job", m.GetGrant().GetJobId(), "worker", m.GetWorker())
	}
	s.cat.addManifest(key, hashes, now)
	s.log.Info("stored manifest", "cache_key", key, "step", m.GetStepName(), "files", len(files), "worker", m.GetWorker())
	return nil
}

// KeepStored applies the attempt rule of PutManifest to a manifest m for a
// key under which old is stored: an error refuses m (an abandoned, earlier
// attempt's), keep means m is the same attempt's and old stays, neither
// means m replaces old. Every backend decides by this rule.
func KeepStored(key digest.CacheKey, m, old *distbuildv1.Manifest) (keep bool, err error) {
	switch seq, oldSeq := m.GetGrant().GetSequence(), old.GetGrant().GetSequence(); {
	case seq < oldSeq:
		return false, status.Errorf(codes.FailedPrecondition,
			"manifest %s: a later attempt's result (job %s on worker %s) is already stored; this attempt (job %s) was abandoned",
			key, old.GetGrant().GetJobId(), old.GetWorker(), m.GetGrant().GetJobId())
	case seq == oldSeq:
		return true, nil
	}
	return false, nil
}

// writeManifestUnlocked writes a manifest to the index without holding
// s.mu, so that the fsync is shared with concurrent puts (index.putManifest
// batches them) and readers are not held up by it. Meanwhile its blobs are
// pinned and its key marked as storing, so eviction takes neither the
// blobs nor the manifest being replaced, and another put of the key waits.
// If a blob was lost anyway (a scrub quarantined it), the manifest is
// taken out of the index again and the put fails, so a manifest the cache
// lists still implies its blobs. Called with s.mu held; returns with it
// held.
func (s *Store) writeManifestUnlocked(key digest.CacheKey, raw []byte, hashes []digest.Hash, now int64) error {
	done := make(chan struct{})
	s.cat.storing[key] = done
	for _, h := range hashes {
		s.cat.pin(h)
	}
	s.mu.Unlock()
	err := s.ix.putManifest(key, raw, now)
	s.mu.Lock()
	for _, h := range hashes {
		s.cat.unpin(h)
	}
	delete(s.cat.storing, key)
	close(done)
	if err != nil {
		return status.Errorf(codes.Internal, "store manifest %s: %v", key, err)
	}
	for _, h := range hashes {
		if _, ok := s.cat.blobs[h]; !ok {
			if err := s.ix.remove(nil, []digest.CacheKey{key}); err != nil {
				return status.Errorf(codes.Internal, "store manifest %s: a blob it names was lost while it was written, and taking it out again failed: %v", key, err)
			}
			s.cat.removeManifest(key)
			return status.Errorf(codes.FailedPrecondition, "manifest %s: blob %x was lost (quarantined) while the manifest was stored; upload it again", key, h[:])
		}
	}
	return nil
}

// GetManifest returns the manifest stored under a key; all its blobs are
// present at the moment it is returned.
func (s *Store) GetManifest(key digest.CacheKey) (*distbuildv1.Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cat.manifests[key]; !ok {
		return nil, status.Errorf(codes.NotFound, "no manifest for cache key %s", key)
	}
	s.cat.touchManifest(key, s.now())
	return s.manifestLocked(key)
}

// manifestLocked reads a manifest the catalog lists. Called with s.mu held.
func (s *Store) manifestLocked(key digest.CacheKey) (*distbuildv1.Manifest, error) {
	raw, err := s.ix.manifest(key)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read manifest %s: %v", key, err)
	}
	m := &distbuildv1.Manifest{}
	if err := proto.Unmarshal(raw, m); err != nil {
		return nil, status.Errorf(codes.Internal, "decode stored manifest %s: %v", key, err)
	}
	return m, nil
}

// CheckManifest validates a manifest's shape: a well-formed cache key and,
// for each file, a non-empty unique name and a well-formed digest. It is
// exported so that every backend refuses the same malformed manifests.
func CheckManifest(m *distbuildv1.Manifest) (digest.CacheKey, []digest.Digest, error) {
	if m == nil {
		return digest.CacheKey{}, nil, status.Error(codes.InvalidArgument, "manifest is missing")
	}
	key, err := digest.ParseCacheKey(m.GetCacheKey())
	if err != nil {
		return digest.CacheKey{}, nil, err
	}
	names := map[string]bool{}
	files := make([]digest.Digest, 0, len(m.GetFiles()))
	for i, f := range m.GetFiles() {
		if f.GetName() == "" {
			return key, nil, status.Errorf(codes.InvalidArgument, "manifest %s: file %d has no name", key, i)
		}
		if names[f.GetName()] {
			return key, nil, status.Errorf(codes.InvalidArgument, "manifest %s: file name %q appears twice", key, f.GetName())
		}
		names[f.GetName()] = true
		d, err := digest.FromProto(f.GetDigest())
		if err != nil {
			return key, nil, status.Errorf(codes.InvalidArgument, "manifest %s: file %q: %s", key, f.GetName(), status.Convert(err).Message())
		}
		files = append(files, d)
	}
	return key, files, nil
}

func uniqueHashes(files []digest.Digest) []digest.Hash {
	seen := map[digest.Hash]bool{}
	var hs []digest.Hash
	for _, d := range files {
		if !seen[d.Hash()] {
			seen[d.Hash()] = true
			hs = append(hs, d.Hash())
		}
	}
	return hs
}

// firstFew keeps error messages readable when many things are listed.
func firstFew(items []string) []string {
	const n = 5
	if len(items) <= n {
		return items
	}
	return append(items[:n:n], fmt.Sprintf("and %d more", len(items)-n))
}
