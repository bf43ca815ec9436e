package step

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"distbuild/digest"
	"distbuild/manifestsig"
	pb "distbuild/proto/distbuild/v1"
)

// Every exchange with the artifact cache runs under a progress watchdog
// (Config.TransferStallTimeout): a blob stream must keep moving data, and a
// call without a stream (a manifest) must be answered within the limit. A
// cache or network that hangs then fails the step as a setup failure,
// instead of holding a slot until the step's timeout.

// download stores blob d at path (see cache.Cache: path
// never holds a partial blob), giving up when it stops making progress.
func (r *Runner) download(ctx context.Context, d digest.Digest, path string) error {
	what := fmt.Sprintf("downloading %s from the artifact cache", d)
	return watched(ctx, r.cfg.Clock, what, "progress", r.cfg.TransferStallTimeout, func(ctx context.Context, progress func()) error {
		return r.cfg.Cache.DownloadWithProgress(ctx, d, path, progress)
	})
}

// uploadFile stores the first d.Size() bytes of the file at path, which
// hash to d, in the cache.
func (r *Runner) uploadFile(ctx context.Context, what, path string, d digest.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.uploadReader(ctx, what, d, io.LimitReader(f, d.Size()))
}

// uploadBytes stores a small in-memory blob and returns its digest.
func (r *Runner) uploadBytes(ctx context.Context, what string, data []byte) (digest.Digest, error) {
	d := digest.OfBytes(data)
	return d, r.uploadReader(ctx, what, d, bytes.NewReader(data))
}

func (r *Runner) uploadReader(ctx context.Context, what string, d digest.Digest, content io.Reader) error {
	return watched(ctx, r.cfg.Clock, what, "progress", r.cfg.TransferStallTimeout, func(ctx context.Context, progress func()) error {
		return r.cfg.Cache.Upload(ctx, d, progressReader{r: content, progress: progress})
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
func (r *Runner) manifest(ctx context.Context, cacheKey string) (*pb.Manifest, error) {
	key, err := digest.ParseCacheKey(cacheKey)
	if err != nil {
		return nil, err
	}
	var m *pb.Manifest
	what := "fetching the manifest of " + cacheKey
	err = watched(ctx, r.cfg.Clock, what, "progress", r.cfg.TransferStallTimeout, func(ctx context.Context, _ func()) error {
		m, err = r.cfg.Cache.GetManifest(ctx, key)
		return missingInput(cacheKey, err)
	})
	if err != nil {
		return nil, doing(what, err)
	}
	return m, nil
}

// putManifest signs a finished step's manifest and records it in the cache.
func (r *Runner) putManifest(ctx context.Context, m *pb.Manifest) error {
	const what = "storing the manifest"
	if err := manifestsig.Sign(m, r.cfg.Worker, r.cfg.SigningKey); err != nil {
		return doing("signing the manifest", err)
	}
	return doing(what, watched(ctx, r.cfg.Clock, what, "progress", r.cfg.TransferStallTimeout, func(ctx context.Context, _ func()) error {
		return r.cfg.Cache.PutManifest(ctx, m)
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
