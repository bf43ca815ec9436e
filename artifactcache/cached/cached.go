// Package cached puts a trove's local store in front of a shared remote
// store (an S3 bucket) as a bounded read-through cache, so that several
// troves, one per rack or site, can share one bucket while each serves
// repeated downloads from its own disk.
//
// The remote store is the truth and the local store only ever holds copies
// of its blobs:
//   - an upload goes to both at once; it is committed to the remote store
//     first, which checks the digest, and then locally (a local failure,
//     such as a full cache, only costs the copy);
//   - a read of a blob the local store lacks copies it from the remote
//     store into the local one, verified as any upload is, then serves it
//     from there, checked block by block; a blob larger than the whole local
//     cache is streamed from the remote store instead;
//   - FindMissing and manifests always ask the remote store, so a blob
//     another trove uploaded counts as present, and a manifest is only
//     answered when the bucket holds its blobs. Manifests are not kept
//     locally: each trove would otherwise answer from its own, possibly
//     stale, copy when another trove stores a later attempt's.
//
// The local store evicts least recently used blobs to stay under its size
// limit, as it does without a remote store.
package cached

import (
	"context"
	"sync"
	"sync/atomic"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/store"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fillBuffers is how many pieces of a blob being copied from the remote
// store can wait to be written locally.
const fillBuffers = 4

// Store is a local store in front of a remote one.
type Store struct {
	local  *store.Store
	remote backend.Store
	log    hclog.Logger

	mu    sync.Mutex
	fills map[digest.Hash]*fill // copies from the remote store in progress
}

// fill is one copy into the local store that concurrent readers share.
type fill struct {
	done chan struct{}
	err  error
}

// New serves remote through local; logger may be nil.
func New(local *store.Store, remote backend.Store, logger hclog.Logger) *Store {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Store{local: local, remote: remote, log: logger, fills: map[digest.Hash]*fill{}}
}

// FindMissing asks the remote store, which holds everything the local
// one does and what other troves uploaded.
func (s *Store) FindMissing(ctx context.Context, blobs []digest.Digest, keys []digest.CacheKey) ([]digest.Digest, []digest.CacheKey, error) {
	return s.remote.FindMissing(ctx, blobs, keys)
}

// Lookup answers from the local store when it can.
func (s *Store) Lookup(ctx context.Context, h digest.Hash) (digest.Digest, error) {
	if d, ok := s.local.Lookup(h); ok {
		return d, nil
	}
	return s.remote.Lookup(ctx, h)
}

// GetManifest asks the remote store.
func (s *Store) GetManifest(ctx context.Context, key digest.CacheKey) (*distbuildv1.Manifest, error) {
	return s.remote.GetManifest(ctx, key)
}

// PutManifest stores the manifest in the remote store, which checks that
// it holds the blobs.
func (s *Store) PutManifest(ctx context.Context, m *distbuildv1.Manifest) error {
	return s.remote.PutManifest(ctx, m)
}

// OpenBlob serves the blob from the local store, copying it there first
// if need be; one too large for the local store is read from the remote.
func (s *Store) OpenBlob(ctx context.Context, d digest.Digest) (backend.Blob, error) {
	b, err := s.OpenLocal(ctx, d)
	if status.Code(err) == codes.ResourceExhausted {
		s.log.Debug("blob does not fit in the local cache; reading it from the remote store", "digest", d, "error", err)
		return s.remote.OpenBlob(ctx, d)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// OpenLocal opens the blob in the local store, copying it from the remote
// store first if need be (the HTTP API needs the local type, whose blocks
// it checks before answering).
func (s *Store) OpenLocal(ctx context.Context, d digest.Digest) (*store.Blob, error) {
	for tries := 0; ; tries++ {
		b, err := s.local.OpenBlob(d)
		if status.Code(err) != codes.NotFound {
			return b, err
		}
		if tries == 2 {
			// Evicted as soon as it was copied, twice: the local cache
			// is too busy to hold it.
			return nil, status.Errorf(codes.ResourceExhausted, "blob %s: the local cache could not keep it long enough to serve it", d)
		}
		if err := s.fill(ctx, d); err != nil {
			return nil, err
		}
	}
}

// fill copies a blob from the remote store into the local one, once for
// all concurrent readers.
func (s *Store) fill(ctx context.Context, d digest.Digest) error {
	s.mu.Lock()
	f, ok := s.fills[d.Hash()]
	if !ok {
		f = &fill{done: make(chan struct{})}
		s.fills[d.Hash()] = f
		s.mu.Unlock()
		// A copy others may share runs to its end even if this reader
		// goes away.
		f.err = s.copyFromRemote(context.WithoutCancel(ctx), d)
		s.mu.Lock()
		delete(s.fills, d.Hash())
		close(f.done)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (s *Store) copyFromRemote(ctx context.Context, d digest.Digest) error {
	rb, err := s.remote.OpenBlob(ctx, d)
	if err != nil {
		return err
	}
	defer rb.Close()
	w, err := s.local.NewBlobWriter(d)
	if err != nil {
		return err
	}
	defer w.Abort()
	free := make(chan []byte, fillBuffers)
	for range fillBuffers {
		free <- nil
	}
	err = rb.Stream(ctx, 0, 0, func(p []byte) error {
		buf := <-free
		buf = append(buf[:0], p...)
		return w.WriteAsync(buf, func() { free <- buf })
	})
	if err != nil {
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	s.log.Debug("copied blob from the remote store", "digest", d)
	return nil
}

// NewBlobWriter uploads to the remote store and the local one at once.
// Without room in the local store the upload goes to the remote store
// alone.
func (s *Store) NewBlobWriter(ctx context.Context, d digest.Digest) (backend.BlobWriter, error) {
	rw, err := s.remote.NewBlobWriter(ctx, d)
	if err != nil {
		return nil, err
	}
	return s.tee(rw, d, func() (*store.BlobWriter, error) { return s.local.NewBlobWriter(d) }), nil
}

// NewBlobWriterOfSize is NewBlobWriter for an upload whose digest comes
// after its content.
func (s *Store) NewBlobWriterOfSize(ctx context.Context, size int64) (backend.BlobWriter, error) {
	rw, err := s.remote.NewBlobWriterOfSize(ctx, size)
	if err != nil {
		return nil, err
	}
	return s.tee(rw, digest.Digest{}, func() (*store.BlobWriter, error) { return s.local.NewBlobWriterOfSize(size) }), nil
}

// tee pairs a remote upload with a local one, when the local store can
// take it.
func (s *Store) tee(rw backend.BlobWriter, d digest.Digest, local func() (*store.BlobWriter, error)) *teeWriter {
	lw, err := local()
	if err != nil {
		s.log.Debug("not keeping a local copy of an upload", "digest", d, "error", err)
		lw = nil
	}
	return &teeWriter{s: s, d: d, remote: rw, local: lw}
}

// teeWriter writes each piece to both stores.
type teeWriter struct {
	s      *Store
	d      digest.Digest
	remote backend.BlobWriter
	local  *store.BlobWriter // nil once the local copy has been given up
}

// WriteAsync hands p to the remote writer and then the local one; release
// runs when both are done with it.
func (t *teeWriter) WriteAsync(p []byte, release func()) error {
	if t.local == nil {
		return t.remote.WriteAsync(p, release)
	}
	var pending atomic.Int32
	pending.Store(2)
	done := func() {
		if pending.Add(-1) == 0 && release != nil {
			release()
		}
	}
	if err := t.remote.WriteAsync(p, done); err != nil {
		return err
	}
	if err := t.local.WriteAsync(p, done); err != nil {
		done()
		t.s.log.Debug("giving up the local copy of an upload", "digest", t.d, "error", err)
		t.local.Abort()
		t.local = nil
	}
	return nil
}

// Commit commits to the remote store first: the local store holds only
// what the remote one does.
func (t *teeWriter) Commit() error {
	return t.commit(backend.BlobWriter.Commit)
}

// commit completes the remote upload and then the local one with done.
func (t *teeWriter) commit(done func(backend.BlobWriter) error) error {
	if err := done(t.remote); err != nil {
		t.Abort()
		return err
	}
	if t.local != nil {
		if err := done(t.local); err != nil {
			t.s.log.Warn("stored in the remote store but not locally", "digest", t.d, "error", err)
		}
	}
	return nil
}

// CommitAs is Commit with the digest declared after the content.
func (t *teeWriter) CommitAs(d digest.Digest) error {
	t.d = d
	return t.commit(func(w backend.BlobWriter) error { return w.CommitAs(d) })
}

// Abort abandons both uploads.
func (t *teeWriter) Abort() {
	t.remote.Abort()
	if t.local != nil {
		t.local.Abort()
	}
}
