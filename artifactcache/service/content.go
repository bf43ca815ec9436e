package service

import (
	"bytes"
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"
)

// BlobReader reads a stored blob whole, refusing one larger than limit
// bytes before reading any of it.
type BlobReader func(ctx context.Context, d digest.Digest, limit int64) ([]byte, error)

// ContentVerifier is a ManifestVerifier that also looks inside blobs the
// manifest names, such as its signed provenance, before it is stored. Its
// VerifyManifestContent is called after VerifyManifest accepts the
// manifest, with a reader of the cache's own blobs: what it checks is what
// readers will get.
type ContentVerifier interface {
	VerifyManifestContent(ctx context.Context, m *distbuildv1.Manifest, read BlobReader) error
}

// readBlob reads blob d from the store, checked against its block
// checksums as every read is.
func (s *Service) readBlob(ctx context.Context, d digest.Digest, limit int64) ([]byte, error) {
	if d.Size() > limit {
		return nil, status.Errorf(codes.InvalidArgument, "blob %s is larger than the %d bytes allowed", d, limit)
	}
	b, err := s.store.OpenBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var buf bytes.Buffer
	if err := b.Stream(ctx, 0, 0, func(chunk []byte) error {
		_, err := buf.Write(chunk)
		return err
	}); err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d, err)
	}
	return buf.Bytes(), nil
}
