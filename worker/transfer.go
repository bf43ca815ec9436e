package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"distbuild/digest"
	"distbuild/manifestsig"
	pb "distbuild/proto/distbuild/v1"
)

// Every exchange with the artifact cache runs under a progress watchdog
// (Config.TransferStallTimeout): a blob stream must keep moving data, and a
// call without a stream (a manifest) must be answered within the limit. A
// cache or network that hangs then fails the step as a setup failure,
// instead of holding a slot until the step's timeout.

// CacheDialOptions are the gRPC options for a worker's connection to the
// artifact cache, added to artifactcache.Dial's own.
//
// Every call waits for the cache to be reachable (gRPC's wait-for-ready)
// instead of failing at once, and the watchdog above bounds the wait like
// any transfer that makes no progress. Failing at once made a trove
// restart of a second or two fatal to the builds it interrupted: the job
// whose upload was cut off reported its failure straight away, the
// controller retried the step on another worker straight away, that
// attempt failed the same way, and all of the step's attempts were gone
// before the trove was back. Now the interrupted job reports its failure
// only once the cache takes its log again, so the retry starts with the
// trove up. Reconnection backs off to at most a few seconds, not gRPC's
// two minutes, since a waiting job holds its slot meanwhile.
func CacheDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 20 * time.Second,
		}),
	}
}

// download stores blob d at path (see Client.DownloadWithProgress: path
// never holds a partial blob), giving up when it stops making progress.
func (w *Worker) download(ctx context.Context, d digest.Digest, path string) error {
	what := fmt.Sprintf("downloading %s from the artifact cache", d)
	return watched(ctx, what, "progress", w.cfg.TransferStallTimeout, func(ctx context.Context, progress func()) error {
		return w.cfg.Cache.DownloadWithProgress(ctx, d, path, progress)
	})
}

// uploadFile stores the first d.Size() bytes of the file at path, which
// hash to d, in the cache.
func (w *Worker) uploadFile(ctx context.Context, what, path string, d digest.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return w.uploadReader(ctx, what, d, io.LimitReader(f, d.Size()))
}

// uploadBytes stores a small in-memory blob and returns its digest.
func (w *Worker) uploadBytes(ctx context.Context, what string, data []byte) (digest.Digest, error) {
	d := digest.OfBytes(data)
	return d, w.uploadReader(ctx, what, d, bytes.NewReader(data))
}

func (w *Worker) uploadReader(ctx context.Context, what string, d digest.Digest, r io.Reader) error {
	return watched(ctx, what, "progress", w.cfg.TransferStallTimeout, func(ctx context.Context, progress func()) error {
		return w.cfg.Cache.Upload(ctx, d, progressReader{r: r, progress: progress})
	})
}

// hashFile computes the digest of the first size bytes of the file at path.
func hashFile(path string, size int64) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest.Digest{}, err
	}
	defer f.Close()
	h := digest.NewHasher()
	if _, err := io.Copy(h, io.LimitReader(f, size)); err != nil {
		return digest.Digest{}, err
	}
	return h.Digest(), nil
}

// manifest fetches the manifest of an artifact the job needs.
func (w *Worker) manifest(ctx context.Context, cacheKey string) (*pb.Manifest, error) {
	key, err := digest.ParseCacheKey(cacheKey)
	if err != nil {
		return nil, err
	}
	var m *pb.Manifest
	what := "fetching the manifest of " + cacheKey
	err = watched(ctx, what, "progress", w.cfg.TransferStallTimeout, func(ctx context.Context, _ func()) error {
		m, err = w.cfg.Cache.GetManifest(ctx, key)
		return err
	})
	if err != nil {
		return nil, doing(what, err)
	}
	return m, nil
}

// putManifest signs a finished step's manifest and records it in the cache.
func (w *Worker) putManifest(ctx context.Context, m *pb.Manifest) error {
	const what = "storing the manifest"
	if err := manifestsig.Sign(m, w.cfg.Name, w.cfg.SigningKey); err != nil {
		return doing("signing the manifest", err)
	}
	return doing(what, watched(ctx, what, "progress", w.cfg.TransferStallTimeout, func(ctx context.Context, _ func()) error {
		return w.cfg.Cache.PutManifest(ctx, m)
	}))
}

// doing says what the worker was doing when err happened, unless err is a
// stall, which says so itself.
func doing(what string, err error) error {
	if err == nil || errors.As(err, new(*stallError)) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}
