package s3store

import (
	"context"
	"errors"
	"io"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/store"
	"distbuild/digest"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readChunk is the size of the pieces a read hands to its sender.
const readChunk = 1 << 20

// statBlob says whether the bucket holds blob d, with the right size.
func (s *Store) statBlob(ctx context.Context, d digest.Digest) (bool, error) {
	info, err := s.core.StatObject(ctx, s.bucket, s.blobName(d.Hash()), minio.StatObjectOptions{})
	switch {
	case isNotFound(err):
		return false, nil
	case err != nil:
		return false, s.s3Status(err, "look up blob %s", d)
	case info.Size != d.Size():
		// Not the blob asked for: only a digest with the wrong size can
		// name it (or someone replaced the object); either way absent.
		return false, nil
	}
	return true, nil
}

// FindMissing asks the bucket about each blob and manifest, several at a
// time. A manifest counts as present only while every blob it names is.
func (s *Store) FindMissing(ctx context.Context, blobs []digest.Digest, keys []digest.CacheKey) ([]digest.Digest, []digest.CacheKey, error) {
	blobOK := make([]bool, len(blobs))
	keyOK := make([]bool, len(keys))
	err := parallel(ctx, len(blobs)+len(keys), func(ctx context.Context, i int) error {
		if i < len(blobs) {
			ok, err := s.statBlob(ctx, blobs[i])
			blobOK[i] = ok
			return err
		}
		_, err := s.GetManifest(ctx, keys[i-len(blobs)])
		if status.Code(err) == codes.NotFound {
			return nil
		}
		keyOK[i-len(blobs)] = err == nil
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	var missingBlobs []digest.Digest
	for i, d := range blobs {
		if !blobOK[i] {
			missingBlobs = append(missingBlobs, d)
		}
	}
	var missingKeys []digest.CacheKey
	for i, k := range keys {
		if !keyOK[i] {
			missingKeys = append(missingKeys, k)
		}
	}
	return missingBlobs, missingKeys, nil
}

// Lookup finds a blob's size from its hash.
func (s *Store) Lookup(ctx context.Context, h digest.Hash) (digest.Digest, error) {
	info, err := s.core.StatObject(ctx, s.bucket, s.blobName(h), minio.StatObjectOptions{})
	if isNotFound(err) {
		return digest.Digest{}, status.Errorf(codes.NotFound, "blob %s not in the cache", h)
	}
	if err != nil {
		return digest.Digest{}, s.s3Status(err, "look up blob %s", h)
	}
	return digest.New(h, info.Size)
}

// OpenBlob checks that the bucket holds the blob; its content is fetched
// by Stream.
func (s *Store) OpenBlob(ctx context.Context, d digest.Digest) (backend.Blob, error) {
	ok, err := s.statBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "blob %s not in the cache", d)
	}
	return &blob{s: s, d: d}, nil
}

// blob is a blob in the bucket.
type blob struct {
	s *Store
	d digest.Digest
}

func (b *blob) Close() error { return nil }

// Stream fetches the range from the bucket in one request. A read of the
// whole blob is hashed on the way and its last piece held back until the
// hash has matched, so damaged content ends the stream with DataLoss
// instead of success. A partial range cannot be checked against the
// digest; a trove reads through its local cache, which checks every block
// it serves, and uses partial ranges from the bucket only for blobs too
// large for that cache.
func (b *blob) Stream(ctx context.Context, offset, limit int64, send func([]byte) error) error {
	end, err := store.RangeEnd(b.d, offset, limit)
	if err != nil || offset == end {
		return err
	}
	whole := offset == 0 && end == b.d.Size()
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(offset, end-1); err != nil {
		return status.Errorf(codes.Internal, "range of %s: %v", b.d, err)
	}
	body, _, _, err := b.s.core.GetObject(ctx, b.s.bucket, b.s.blobName(b.d.Hash()), opts)
	if isNotFound(err) {
		return status.Errorf(codes.NotFound, "blob %s not in the cache (it vanished from the bucket)", b.d)
	}
	if err != nil {
		return b.s.s3Status(err, "read blob %s", b.d)
	}
	defer body.Close()
	h := digest.NewHasher()
	buf, next := make([]byte, readChunk), make([]byte, readChunk)
	var held []byte // the piece read but not yet sent
	for pos := offset; pos < end; {
		piece := next[:min(int64(readChunk), end-pos)]
		if _, err := io.ReadFull(body, piece); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return status.Errorf(codes.DataLoss, "blob %s in the bucket is shorter than its digest says", b.d)
			}
			return b.s.s3Status(err, "read blob %s", b.d)
		}
		pos += int64(len(piece))
		if whole {
			h.Write(piece)
		}
		if held != nil {
			if err := send(held); err != nil {
				return err
			}
		}
		held = piece
		buf, next = next, buf
	}
	if whole && h.Digest() != b.d {
		b.s.log.Error("blob in the bucket does not match its digest", "digest", b.d, "got", h.Digest())
		return status.Errorf(codes.DataLoss, "blob %s in the bucket does not match its digest", b.d)
	}
	return send(held)
}
