// Package backend is the artifact cache's storage interface: what the
// gRPC service and the HTTP API need from wherever blobs and manifests are
// kept, so that one trove's local disk (artifactcache/store), an
// S3-compatible object store shared by many troves (artifactcache/s3store)
// and the local disk as a bounded read-through cache in front of such a
// store (artifactcache/cached) are interchangeable. It follows Buildbarn's
// BlobAccess: fetch, store and ask which of many blobs are missing, plus the
// manifests that name a build step's blobs.
//
// Every implementation keeps the cache's three promises, which
// backendtest checks for each one against the same suite: a blob is either
// wholly present under its digest or absent (never a partial or unverified
// one); a read never ends in success after handing out bytes that do not
// match the digest; and a manifest the store returns or reports present
// names only blobs it holds.
//
// Errors are gRPC status errors, since the service passes them straight to
// clients: NotFound for what is absent, InvalidArgument for content that
// does not match its digest, FailedPrecondition for a manifest whose blobs
// are missing or that an abandoned attempt sent too late.
package backend

import (
	"context"

	"distbuild/artifactcache/store"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Store keeps blobs and manifests. Implementations are safe for
// concurrent use.
type Store interface {
	// FindMissing returns the blobs and manifests the store does not hold,
	// in request order. An error means the store could not be asked.
	FindMissing(ctx context.Context, blobs []digest.Digest, keys []digest.CacheKey) ([]digest.Digest, []digest.CacheKey, error)
	// Lookup finds a blob by its hash alone (for URLs that carry no
	// size); NotFound when the store does not hold it.
	Lookup(ctx context.Context, h digest.Hash) (digest.Digest, error)
	// OpenBlob opens a blob for reading; NotFound when it is absent.
	OpenBlob(ctx context.Context, d digest.Digest) (Blob, error)
	// NewBlobWriter starts storing the blob d. Nothing is visible until
	// Commit has checked that the content matches d.
	NewBlobWriter(ctx context.Context, d digest.Digest) (BlobWriter, error)
	// NewBlobWriterOfSize starts storing a blob of size bytes whose
	// digest its client declares only after the content (it hashes while
	// sending); CommitAs, not Commit, completes it.
	NewBlobWriterOfSize(ctx context.Context, size int64) (BlobWriter, error)
	// GetManifest returns the manifest under key, every blob of which the
	// store holds; NotFound when there is none (or when a blob it names
	// has been lost).
	GetManifest(ctx context.Context, key digest.CacheKey) (*distbuildv1.Manifest, error)
	// PutManifest stores a manifest once every blob it names is present
	// (FailedPrecondition otherwise). A manifest already stored under the
	// key is replaced only by one from a later attempt (a higher grant
	// sequence); one from an earlier attempt is refused with
	// FailedPrecondition, and the same attempt again keeps the first.
	PutManifest(ctx context.Context, m *distbuildv1.Manifest) error
}

// Blob is an open blob.
type Blob interface {
	// Stream sends the bytes [offset, offset+limit) through send, in
	// pieces that send must not keep; limit 0 means to the end. Damaged
	// content ends the stream with DataLoss rather than success.
	Stream(ctx context.Context, offset, limit int64, send func([]byte) error) error
	// Close releases the blob; it is safe to call twice.
	Close() error
}

// BlobWriter receives one blob's content.
type BlobWriter interface {
	// WriteAsync adds the next content bytes. release (if not nil) runs
	// once the writer no longer needs p, which must not change until
	// then; when WriteAsync fails it never runs. Content beyond the
	// declared size is refused with InvalidArgument.
	WriteAsync(p []byte, release func()) error
	// Commit stores the blob if the content matches the declared digest
	// (InvalidArgument otherwise, and nothing is stored). A blob already
	// present makes Commit succeed without a second copy.
	Commit() error
	// CommitAs is Commit for a writer from NewBlobWriterOfSize, with the
	// digest declared after the content; it must be of the size declared
	// at the start (InvalidArgument otherwise, and nothing is stored).
	CommitAs(d digest.Digest) error
	// Abort discards the upload; it is safe to call after Commit.
	Abort()
}

// Local serves a local store directory through the interface.
func Local(st *store.Store) *LocalStore { return &LocalStore{st: st} }

// LocalStore is a local store seen through Store. Its calls never fail
// for want of a network, so contexts only bound waiting where the store
// waits.
type LocalStore struct{ st *store.Store }

// Store returns the store directory it serves, for what only a local store
// has (scrubs, statistics).
func (l *LocalStore) Store() *store.Store { return l.st }

// FindMissing asks the store's in-memory catalog.
func (l *LocalStore) FindMissing(_ context.Context, blobs []digest.Digest, keys []digest.CacheKey) ([]digest.Digest, []digest.CacheKey, error) {
	mb, mk := l.st.FindMissing(blobs, keys)
	return mb, mk, nil
}

// Lookup finds a stored blob's size from its hash.
func (l *LocalStore) Lookup(_ context.Context, h digest.Hash) (digest.Digest, error) {
	return LookupLocal(l.st, h)
}

// OpenBlob opens and pins the blob.
func (l *LocalStore) OpenBlob(_ context.Context, d digest.Digest) (Blob, error) {
	return l.st.OpenBlob(d)
}

// OpenLocal opens the blob as the local store's own type, whose whole
// content can be checked before any of it is sent (the HTTP API needs
// that to answer with an error status instead of bad bytes).
func (l *LocalStore) OpenLocal(_ context.Context, d digest.Digest) (*store.Blob, error) {
	return l.st.OpenBlob(d)
}

// NewBlobWriter starts an upload into the store's temporary directory.
func (l *LocalStore) NewBlobWriter(_ context.Context, d digest.Digest) (BlobWriter, error) {
	return l.st.NewBlobWriter(d)
}

// NewBlobWriterOfSize starts an upload whose digest comes at its end.
func (l *LocalStore) NewBlobWriterOfSize(_ context.Context, size int64) (BlobWriter, error) {
	return l.st.NewBlobWriterOfSize(size)
}

// GetManifest reads the manifest from the index.
func (l *LocalStore) GetManifest(_ context.Context, key digest.CacheKey) (*distbuildv1.Manifest, error) {
	return l.st.GetManifest(key)
}

// PutManifest stores the manifest in the index.
func (l *LocalStore) PutManifest(_ context.Context, m *distbuildv1.Manifest) error {
	return l.st.PutManifest(m)
}

// LookupLocal is Lookup on a local store, with NotFound for an absent
// blob.
func LookupLocal(st *store.Store, h digest.Hash) (digest.Digest, error) {
	d, ok := st.Lookup(h)
	if !ok {
		return digest.Digest{}, notFound(h)
	}
	return d, nil
}

func notFound(h digest.Hash) error {
	return status.Errorf(codes.NotFound, "blob %s not in the cache", h)
}
