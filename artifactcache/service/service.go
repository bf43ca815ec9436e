// Package service serves a store over the ArtifactCacheService gRPC API.
// It translates between wire messages and the store's checked types, and
// refuses malformed requests with InvalidArgument before they reach the
// store; the store (any backend.Store: the local disk, an S3 bucket, or the
// one cached in front of the other) owns every rule about what may be kept.
package service

import (
	"context"
	"time"

	"distbuild/artifactcache/backend"
	"distbuild/clock"
	"distbuild/digest"
	"distbuild/internal/grpcerr"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ManifestVerifier decides whether a manifest may be stored, e.g. by
// checking that its signature is from a known worker. It is called before
// anything is stored; an error refuses the manifest (PermissionDenied
// unless the error carries its own gRPC code).
type ManifestVerifier interface {
	VerifyManifest(ctx context.Context, m *distbuildv1.Manifest) error
}

// Service implements distbuildv1.ArtifactCacheServiceServer on a store.
type Service struct {
	distbuildv1.UnimplementedArtifactCacheServiceServer
	store       backend.Store
	verifier    ManifestVerifier
	log         hclog.Logger
	clock       clock.Clock
	idleTimeout time.Duration
}

// New serves st as opts say.
func New(st backend.Store, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Clock == nil {
		opts.Clock = clock.System
	}
	if opts.UploadIdleTimeout <= 0 {
		opts.UploadIdleTimeout = DefaultUploadIdleTimeout
	}
	return &Service{store: st, verifier: opts.Verifier, log: opts.Logger, clock: opts.Clock, idleTimeout: opts.UploadIdleTimeout}
}

// FindMissing answers for a whole batch of blobs and manifests at once. A
// single malformed entry refuses the whole request, naming the entry, so
// that a client bug is noticed instead of reading as "missing".
func (s *Service) FindMissing(ctx context.Context, req *distbuildv1.FindMissingRequest) (*distbuildv1.FindMissingResponse, error) {
	blobs := make([]digest.Digest, len(req.GetBlobDigests()))
	for i, p := range req.GetBlobDigests() {
		d, err := digest.FromProto(p)
		if err != nil {
			return nil, grpcerr.Wrapf(err, "blob_digests[%d]", i)
		}
		blobs[i] = d
	}
	keys := make([]digest.CacheKey, len(req.GetCacheKeys()))
	for i, s := range req.GetCacheKeys() {
		k, err := digest.ParseCacheKey(s)
		if err != nil {
			return nil, grpcerr.Wrapf(err, "cache_keys[%d]", i)
		}
		keys[i] = k
	}
	missingBlobs, missingKeys, err := s.store.FindMissing(ctx, blobs, keys)
	if err != nil {
		return nil, err
	}
	resp := &distbuildv1.FindMissingResponse{
		MissingBlobDigests: make([]*distbuildv1.Digest, len(missingBlobs)),
		MissingCacheKeys:   make([]string, len(missingKeys)),
	}
	for i, d := range missingBlobs {
		resp.MissingBlobDigests[i] = d.Proto()
	}
	for i, k := range missingKeys {
		resp.MissingCacheKeys[i] = k.String()
	}
	return resp, nil
}

// GetManifest returns a manifest; NotFound when there is none.
func (s *Service) GetManifest(ctx context.Context, req *distbuildv1.GetManifestRequest) (*distbuildv1.GetManifestResponse, error) {
	k, err := digest.ParseCacheKey(req.GetCacheKey())
	if err != nil {
		return nil, err
	}
	m, err := s.store.GetManifest(ctx, k)
	if err != nil {
		return nil, err
	}
	return &distbuildv1.GetManifestResponse{Manifest: m}, nil
}

// PutManifest stores a manifest after the verifier (if any) accepts it.
func (s *Service) PutManifest(ctx context.Context, req *distbuildv1.PutManifestRequest) (*distbuildv1.PutManifestResponse, error) {
	m := req.GetManifest()
	if m == nil {
		return nil, status.Error(codes.InvalidArgument, "manifest is missing")
	}
	if s.verifier != nil {
		err := s.verifier.VerifyManifest(ctx, m)
		if cv, ok := s.verifier.(ContentVerifier); ok && err == nil {
			err = cv.VerifyManifestContent(ctx, m, s.readBlob)
		}
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				err = status.Error(codes.PermissionDenied, err.Error())
			}
			return nil, grpcerr.Wrapf(err, "manifest %q refused", m.GetCacheKey())
		}
	}
	if err := s.store.PutManifest(ctx, m); err != nil {
		return nil, err
	}
	return &distbuildv1.PutManifestResponse{}, nil
}
