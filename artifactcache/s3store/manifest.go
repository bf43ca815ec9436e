package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"distbuild/artifactcache/store"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// maxManifestSize bounds what is read as a manifest: real ones are a few
// hundred bytes per file.
const maxManifestSize = 16 << 20

// GetManifest reads the manifest and checks that the bucket still holds
// every blob it names; NotFound when it does not, so the step is rebuilt.
func (s *Store) GetManifest(ctx context.Context, key digest.CacheKey) (*distbuildv1.Manifest, error) {
	m, err := s.readManifest(ctx, key)
	if err != nil {
		return nil, err
	}
	_, files, err := store.CheckManifest(m)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stored manifest %s is malformed: %s", key, status.Convert(err).Message())
	}
	missing, err := s.missingBlobs(ctx, files)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		s.log.Warn("a manifest names blobs the bucket no longer holds; treating it as absent", "cache_key", key, "missing", missing[0])
		return nil, status.Errorf(codes.NotFound, "no manifest for cache key %s (it names %d blob(s) the bucket no longer holds)", key, len(missing))
	}
	return m, nil
}

// readManifest fetches and decodes a stored manifest without checking its
// blobs.
func (s *Store) readManifest(ctx context.Context, key digest.CacheKey) (*distbuildv1.Manifest, error) {
	body, _, _, err := s.core.GetObject(ctx, s.bucket, s.manifestName(key), minio.GetObjectOptions{})
	if isNotFound(err) {
		return nil, status.Errorf(codes.NotFound, "no manifest for cache key %s", key)
	}
	if err != nil {
		return nil, s.s3Status(err, "read manifest %s", key)
	}
	defer body.Close()
	raw, err := io.ReadAll(io.LimitReader(body, maxManifestSize+1))
	if err != nil {
		return nil, s.s3Status(err, "read manifest %s", key)
	}
	if len(raw) > maxManifestSize {
		return nil, status.Errorf(codes.Internal, "stored manifest %s is larger than %d bytes", key, maxManifestSize)
	}
	m := &distbuildv1.Manifest{}
	if err := proto.Unmarshal(raw, m); err != nil {
		return nil, status.Errorf(codes.Internal, "decode stored manifest %s: %v", key, err)
	}
	return m, nil
}

// missingBlobs returns the blobs of files the bucket does not hold.
func (s *Store) missingBlobs(ctx context.Context, files []digest.Digest) ([]string, error) {
	seen := map[digest.Digest]bool{}
	var unique []digest.Digest
	for _, d := range files {
		if !seen[d] {
			seen[d] = true
			unique = append(unique, d)
		}
	}
	present := make([]bool, len(unique))
	err := parallel(ctx, len(unique), func(ctx context.Context, i int) error {
		ok, err := s.statBlob(ctx, unique[i])
		present[i] = ok
		return err
	})
	if err != nil {
		return nil, err
	}
	var missing []string
	for i, d := range unique {
		if !present[i] {
			missing = append(missing, d.String())
		}
	}
	return missing, nil
}

// PutManifest stores a manifest once the bucket holds every blob it names,
// following the attempt rule of backend.Store for one already stored.
func (s *Store) PutManifest(ctx context.Context, m *distbuildv1.Manifest) error {
	key, files, err := store.CheckManifest(m)
	if err != nil {
		return err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "encode manifest %s: %v", key, err)
	}
	unlock := s.lockKey(key)
	defer unlock()
	old, err := s.readManifest(ctx, key)
	switch {
	case status.Code(err) == codes.NotFound:
	case err != nil:
		return err
	default:
		keep, err := store.KeepStored(key, m, old)
		if err != nil {
			return err
		}
		if keep {
			// Keep the first, unless its blobs have gone since.
			if _, err := s.GetManifest(ctx, key); status.Code(err) != codes.NotFound {
				return err
			}
		}
	}
	missing, err := s.missingBlobs(ctx, files)
	if err != nil {
		return err
	}
	if n := len(missing); n > 0 {
		if n > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", n-5))
		}
		return status.Errorf(codes.FailedPrecondition, "manifest %s names %d blob(s) the cache does not hold; upload them first: %s",
			key, n, strings.Join(missing, ", "))
	}
	_, err = s.core.PutObject(ctx, s.bucket, s.manifestName(key), bytes.NewReader(raw), int64(len(raw)), "", "",
		minio.PutObjectOptions{ContentType: "application/x-protobuf"})
	if err != nil {
		return s.s3Status(err, "store manifest %s", key)
	}
	s.log.Debug("stored manifest", "cache_key", key, "step", m.GetStepName(), "files", len(files))
	return nil
}
