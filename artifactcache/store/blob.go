package store

import (
	"context"
	"errors"
	"io"
	"os"

	"distbuild/artifactcache/digest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Blob is an open, pinned blob: eviction leaves it alone until Close, so a
// slow download never has its file deleted underneath it.
type Blob struct {
	s      *Store
	d      digest.Digest
	f      *os.File
	closed bool
}

// OpenBlob opens and pins a blob for reading, counting as a use of it.
func (s *Store) OpenBlob(d digest.Digest) (*Blob, error) {
	return s.openBlob(d, true)
}

// openBlob lets a scrub read a blob without making it look recently used.
func (s *Store) openBlob(d digest.Digest, isUse bool) (*Blob, error) {
	s.mu.Lock()
	if !s.cat.hasBlob(d) {
		s.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "blob %s not in the cache", d)
	}
	s.cat.pin(d.Hash())
	if isUse {
		s.cat.touchBlob(d.Hash(), s.now())
	}
	s.mu.Unlock()
	f, err := os.Open(s.dirs.blobPath(d.Hash()))
	if err == nil {
		return &Blob{s: s, d: d, f: f}, nil
	}
	s.unpin(d.Hash())
	if !errors.Is(err, os.ErrNotExist) {
		return nil, ioStatus(err, "open blob %s", d)
	}
	// Someone deleted the file behind the store's back: forget the blob
	// and its manifests so the steps that made them are rebuilt.
	s.mu.Lock()
	dropped, ferr := s.forgetBlobsLocked([]digest.Hash{d.Hash()})
	s.mu.Unlock()
	s.log.Error("blob file vanished; forgot the blob", "digest", d, "manifests_dropped", dropped, "error", ferr)
	return nil, status.Errorf(codes.NotFound, "blob %s not in the cache (its file has vanished)", d)
}

func (s *Store) unpin(h digest.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cat.unpin(h)
}

// ReadAt reads the stored bytes without verifying them; callers that hand
// bytes to others call Verify first or use Stream.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// Close releases the file and the pin. It is safe to call twice.
func (b *Blob) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.s.unpin(b.d.Hash())
	return b.f.Close()
}

// Verify re-hashes the whole blob. A blob that does not match its digest is
// quarantined (dropping the manifests naming it) and Verify returns
// DataLoss.
func (b *Blob) Verify(ctx context.Context) error {
	_, err := b.verify(ctx)
	return err
}

// verify is Verify that also says which manifests a quarantine dropped.
func (b *Blob) verify(ctx context.Context) ([]digest.CacheKey, error) {
	info, err := b.f.Stat()
	if err != nil {
		return nil, ioStatus(err, "stat blob %s", b.d)
	}
	if info.Size() != b.d.Size() {
		return b.corrupt("file has the wrong size")
	}
	h := digest.NewHasher()
	buf := getBuffer()
	defer putBuffer(buf)
	if err := b.hashRange(ctx, h, *buf, 0, b.d.Size()); err != nil {
		return nil, err
	}
	if h.Digest() != b.d {
		return b.corrupt("content does not match the digest")
	}
	return nil, nil
}

// Stream sends the bytes [offset, offset+limit) of the blob through send,
// in chunks of at most ChunkSize; limit 0 means to the end. Every byte of
// the blob is hashed on the way, including those outside the range, and
// the last chunk is held back until the whole hash is checked: a stream
// that ends successfully carried only verified bytes, and a corrupt blob
// ends the stream with DataLoss (and is quarantined) before it completes.
func (b *Blob) Stream(ctx context.Context, offset, limit int64, send func([]byte) error) error {
	size := b.d.Size()
	switch {
	case offset < 0:
		return status.Errorf(codes.InvalidArgument, "negative offset %d", offset)
	case limit < 0:
		return status.Errorf(codes.InvalidArgument, "negative limit %d", limit)
	case offset > size:
		return status.Errorf(codes.OutOfRange, "offset %d is beyond the end of %s", offset, b.d)
	}
	end := size
	if limit > 0 && limit < size-offset {
		end = offset + limit
	}
	h := digest.NewHasher()
	buf, spare := getBuffer(), getBuffer()
	defer putBuffer(buf)
	defer putBuffer(spare)
	if err := b.hashRange(ctx, h, *buf, 0, offset); err != nil {
		return err
	}
	// Each chunk is hashed while it is sent and the next one is read into
	// the spare buffer. The last chunk is not sent until the rest of the
	// blob is hashed and the hash checked.
	chunk, err := b.readChunk(*buf, offset, end)
	pos := offset + int64(len(chunk))
	for err == nil && pos < end {
		var next []byte
		err = h.WriteWhile(chunk, func() error {
			if err := send(chunk); err != nil {
				return err
			}
			var err error
			next, err = b.readChunk(*spare, pos, end)
			return err
		})
		chunk, pos = next, pos+int64(len(next))
		buf, spare = spare, buf
	}
	if err != nil {
		return err
	}
	h.Write(chunk)
	if err := b.hashRange(ctx, h, *spare, end, size); err != nil {
		return err
	}
	if h.Digest() != b.d {
		_, err := b.corrupt("content does not match the digest")
		return err
	}
	if len(chunk) == 0 {
		return nil
	}
	return send(chunk)
}

// hashRange feeds the bytes [from, to) to h.
func (b *Blob) hashRange(ctx context.Context, h *digest.Hasher, buf []byte, from, to int64) error {
	for pos := from; pos < to; {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		chunk, err := b.readChunk(buf, pos, to)
		if err != nil {
			return err
		}
		h.Write(chunk)
		pos += int64(len(chunk))
	}
	return nil
}

// readChunk reads the next chunk of [pos, end) into buf and returns it,
// empty at the end. A file shorter than its digest says is corrupt.
func (b *Blob) readChunk(buf []byte, pos, end int64) ([]byte, error) {
	chunk := buf[:min(int64(len(buf)), end-pos)]
	if len(chunk) == 0 {
		return nil, nil
	}
	_, err := b.f.ReadAt(chunk, pos)
	if errors.Is(err, io.EOF) {
		_, err = b.corrupt("file is shorter than the digest says")
		return nil, err
	}
	if err != nil {
		return nil, ioStatus(err, "read blob %s", b.d)
	}
	return chunk, nil
}

// corrupt quarantines the blob and returns the DataLoss error for it.
func (b *Blob) corrupt(reason string) ([]digest.CacheKey, error) {
	dropped, err := b.s.quarantineOpened(b.d, b.f, reason)
	if err != nil {
		b.s.log.Error("quarantining corrupt blob failed", "digest", b.d, "error", err)
	}
	return dropped, status.Errorf(codes.DataLoss, "blob %s is corrupt (%s); it has been quarantined and the artifacts using it dropped, so they will be rebuilt", b.d, reason)
}
