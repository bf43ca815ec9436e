package artifactcache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"

	"distbuild/artifactcache/internal/wire"
	"distbuild/digest"
	"distbuild/internal/grpcerr"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// chunkPool lends the buffers uploads send content from; a few stay in it
// between uploads.
var chunkPool = wire.NewChunkPool(8)

// Upload sends r's content as the blob d. The server hashes it on arrival
// and keeps it only if it matches d; if the cache already holds d it says
// so at once and the rest of r is not read. Memory use is a few chunks
// (those gRPC has not sent yet), whatever the blob's size.
func (c *Client) Upload(ctx context.Context, d digest.Digest, r io.Reader) error {
	// Cancelling the call on a local failure makes the server drop what it
	// received so far, instead of judging a short upload.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Write(ctx, wire.ContentCodec())
	if err != nil {
		return grpcerr.Wrapf(err, "upload %s", d)
	}
	// A small blob is read into a buffer one byte larger than itself, so
	// its first read also sees the end.
	readSize := int(min(d.Size()+1, wire.ChunkSize))
	first := true
	for {
		// Each chunk is read into a buffer that gRPC takes over and
		// returns to the pool once sent, so the next read never waits for
		// the last send to finish, and nothing is copied.
		buf := chunkPool.Take()
		n, readErr := io.ReadFull(r, (*buf)[:readSize])
		if n > 0 || first {
			*buf = (*buf)[:n]
			msg := &wire.OutgoingWrite{Data: buf, Pool: chunkPool}
			if first {
				msg.Digest = d.Proto()
			}
			if err := stream.SendMsg(msg); errors.Is(err, io.EOF) {
				break // the server has answered; CloseAndRecv says how
			} else if err != nil {
				return grpcerr.Wrapf(err, "upload %s", d)
			}
			first = false
		} else {
			chunkPool.Put(buf)
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			break
		}
		if readErr != nil {
			return status.Errorf(codes.Internal, "upload %s: reading content: %v", d, readErr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return grpcerr.Wrapf(err, "upload %s", d)
	}
	if resp.GetCommittedSize() != d.Size() {
		return status.Errorf(codes.Internal, "upload %s: server committed %d bytes", d, resp.GetCommittedSize())
	}
	return nil
}

// UploadBytes uploads a small in-memory blob, such as a log or metadata,
// and returns its digest.
func (c *Client) UploadBytes(ctx context.Context, content []byte) (digest.Digest, error) {
	d := digest.OfBytes(content)
	return d, c.Upload(ctx, d, bytes.NewReader(content))
}

// UploadFile uploads a file and returns its digest. The file is read
// twice, once to compute the digest (which must be declared up front) and
// once to send it; if it changes in between, the server refuses the upload
// and nothing is stored.
func (c *Client) UploadFile(ctx context.Context, path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest.Digest{}, status.Errorf(codes.InvalidArgument, "upload %s: %v", path, err)
	}
	defer f.Close()
	h := digest.NewHasher()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, wire.ChunkSize)); err != nil {
		return digest.Digest{}, status.Errorf(codes.Internal, "upload %s: hashing: %v", path, err)
	}
	d := h.Digest()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return digest.Digest{}, status.Errorf(codes.Internal, "upload %s: %v", path, err)
	}
	return d, grpcerr.Wrapf(c.Upload(ctx, d, f), "upload %s", path)
}

// UploadStream uploads content whose digest is not known in advance, such
// as a tarball being written by another process. The content is spooled to
// a temporary file in tmpDir ("" for the system default) while being
// hashed, then uploaded from there, so memory use stays one chunk.
func (c *Client) UploadStream(ctx context.Context, r io.Reader, tmpDir string) (digest.Digest, error) {
	f, err := os.CreateTemp(tmpDir, "artifactcache-upload-*")
	if err != nil {
		return digest.Digest{}, status.Errorf(codes.Internal, "upload stream: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := digest.NewHasher()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), r, make([]byte, wire.ChunkSize)); err != nil {
		return digest.Digest{}, status.Errorf(codes.Internal, "upload stream: spooling: %v", err)
	}
	d := h.Digest()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return digest.Digest{}, status.Errorf(codes.Internal, "upload stream: %v", err)
	}
	return d, c.Upload(ctx, d, f)
}
