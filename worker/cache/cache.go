// Package cache is the artifact cache as a worker's steps see it: the small
// interface of what a step does with the shared cache (manifests in and
// out, blobs down to a file and up from a reader), the worker's dial
// options for it, and Local, the bounded local copy of downloaded blobs,
// which wraps that interface so a step cannot tell whether a blob came
// from the trove or from disk.
package cache

import (
	"context"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

// Cache is what a step needs of the artifact cache. *artifactcache.Client
// implements it over gRPC; Local wraps any Cache with a local copy of
// downloaded blobs; tests may use an in-memory one (package cachetest)
// where a real trove adds nothing. Keeping it this small is what lets the
// step runner be tested, and its storage be decorated, without a trove.
type Cache interface {
	// GetManifest fetches the manifest stored under key; a missing one is
	// a NotFound error.
	GetManifest(ctx context.Context, key digest.CacheKey) (*pb.Manifest, error)
	// PutManifest stores a step's manifest, whose blobs must be stored
	// already.
	PutManifest(ctx context.Context, m *pb.Manifest) error
	// DownloadWithProgress puts blob d, verified, at path, which never
	// holds a partial blob; progress (when not nil) is called as content
	// arrives, so a caller can tell a slow transfer from a stalled one.
	DownloadWithProgress(ctx context.Context, d digest.Digest, path string, progress func()) error
	// Upload stores the content r yields, which must hash to d.
	Upload(ctx context.Context, d digest.Digest, r io.Reader) error
}

// DialOptions are the gRPC options for a worker's connection to the
// artifact cache, added to artifactcache.Dial's own.
//
// Every call waits for the cache to be reachable (gRPC's wait-for-ready)
// instead of failing at once, and the step runner's progress watchdog
// bounds the wait like any transfer that makes no progress. Failing at
// once made a trove restart of a second or two fatal to the builds it
// interrupted: the job whose upload was cut off reported its failure
// straight away, the controller retried the step on another worker
// straight away, that attempt failed the same way, and all of the step's
// attempts were gone before the trove was back. Now the interrupted job
// reports its failure only once the cache takes its log again, so the
// retry starts with the trove up. Reconnection backs off to at most a few
// seconds, not gRPC's two minutes, since a waiting job holds its slot
// meanwhile.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 20 * time.Second,
		}),
	}
}
