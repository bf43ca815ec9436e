// Package cachetest holds an artifact cache in memory, for tests of code
// that needs somewhere to keep blobs and manifests but nothing of a real
// trove's transfer behaviour (for that, tests start a trove).
package cachetest

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"distbuild/digest"
	"distbuild/internal/atomicfile"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/cache"
)

var _ cache.Cache = (*Memory)(nil)

// Memory is a cache.Cache in memory. Like the trove, it checks what it is
// given: an upload must hash to its digest, and a manifest's blobs must be
// stored first. It is safe for concurrent use.
type Memory struct {
	mu        sync.Mutex
	blobs     map[digest.Digest][]byte
	manifests map[digest.CacheKey]*pb.Manifest
}

// NewMemory returns an empty cache.
func NewMemory() *Memory {
	return &Memory{blobs: map[digest.Digest][]byte{}, manifests: map[digest.CacheKey]*pb.Manifest{}}
}

// GetManifest returns a copy of the manifest stored under key.
func (m *Memory) GetManifest(_ context.Context, key digest.CacheKey) (*pb.Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	man, ok := m.manifests[key]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "get manifest %s: not found", key)
	}
	return proto.Clone(man).(*pb.Manifest), nil
}

// PutManifest stores a copy of man, once every blob it names is stored.
func (m *Memory) PutManifest(_ context.Context, man *pb.Manifest) error {
	key, err := digest.ParseCacheKey(man.GetCacheKey())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "put manifest: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range man.Files {
		d, err := digest.FromProto(f.Digest)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "put manifest %s: %s: %v", key, f.Name, err)
		}
		if _, ok := m.blobs[d]; !ok {
			return status.Errorf(codes.FailedPrecondition, "put manifest %s: blob %s of %s is missing", key, d, f.Name)
		}
	}
	m.manifests[key] = proto.Clone(man).(*pb.Manifest)
	return nil
}

// DownloadWithProgress writes blob d to path, whole or not at all.
func (m *Memory) DownloadWithProgress(_ context.Context, d digest.Digest, path string, progress func()) error {
	data, err := m.blob(d)
	if err != nil {
		return err
	}
	if progress != nil {
		progress()
	}
	return atomicfile.Write(path, data, 0o644)
}

// Upload stores what r yields, if it hashes to d.
func (m *Memory) Upload(_ context.Context, d digest.Digest, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if got := digest.OfBytes(data); got != d {
		return status.Errorf(codes.InvalidArgument, "upload %s: content hashes to %s", d, got)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[d] = data
	return nil
}

// blob returns blob d's content.
func (m *Memory) blob(d digest.Digest) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.blobs[d]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "fetch %s: not found", d)
	}
	return data, nil
}
