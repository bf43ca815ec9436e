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
	distbuildv1 "distbuild/proto/distbuild/v1"

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
	return grpcerr.Wrapf(c.send(ctx, d.Proto(), d.Size(), r, nil), "upload %s", d)
}

// send streams size bytes of r as one upload whose first message declares
// first. With a hasher h, first holds only the size: the content is hashed
// as it is sent, and the last message declares the digest.
func (c *Client) send(ctx context.Context, first *distbuildv1.Digest, size int64, r io.Reader, h *digest.Hasher) error {
	// Cancelling the call on a local failure makes the server drop what it
	// received so far, instead of judging a short upload.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Write(ctx, wire.ContentCodec())
	if err != nil {
		return err
	}
	// A small blob is read into a buffer one byte larger than itself, so
	// its first read also sees the end.
	readSize := int(min(size+1, wire.ChunkSize))
	declared := first
	for {
		// Each chunk is read into a buffer that gRPC takes over and
		// returns to the pool once sent, so the next read never waits for
		// the last send to finish, and nothing is copied.
		buf := chunkPool.Take()
		n, readErr := io.ReadFull(r, (*buf)[:readSize])
		if n > 0 || declared != nil {
			*buf = (*buf)[:n]
			chunk := *buf
			msg := &wire.OutgoingWrite{Digest: declared, Data: buf, Pool: chunkPool}
			declared = nil
			if err := stream.SendMsg(msg); errors.Is(err, io.EOF) {
				break // the server has answered; CloseAndRecv says how
			} else if err != nil {
				return err
			}
			if h != nil {
				// gRPC may still be sending the chunk while it is
				// hashed (both only read it); its buffer goes back to
				// the pool when gRPC is done, and only this loop's next
				// Take lends it again.
				h.Write(chunk)
			}
		} else {
			chunkPool.Put(buf)
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			break
		}
		if readErr != nil {
			return status.Errorf(codes.Internal, "reading content: %v", readErr)
		}
	}
	if h != nil {
		msg := &wire.OutgoingWrite{Digest: h.Digest().Proto(), Data: chunkPool.Take(), Pool: chunkPool}
		*msg.Data = (*msg.Data)[:0]
		if err := stream.SendMsg(msg); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetCommittedSize() != size {
		return status.Errorf(codes.Internal, "server committed %d bytes", resp.GetCommittedSize())
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
// once: its content is hashed as it is sent, and the server checks it
// against the digest declared after it. The blob is the file's first
// Stat().Size() bytes; if the file shrinks meanwhile the server refuses
// the upload and nothing is stored. Unlike Upload, a blob the cache holds
// already is sent whole: a caller that knows the digest and expects the
// blob to be there uses Upload.
func (c *Client) UploadFile(ctx context.Context, path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest.Digest{}, status.Errorf(codes.InvalidArgument, "upload %s: %v", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return digest.Digest{}, status.Errorf(codes.Internal, "upload %s: %v", path, err)
	}
	size := info.Size()
	h := digest.NewHasher()
	if err := c.send(ctx, &distbuildv1.Digest{SizeBytes: size}, size, io.LimitReader(f, size), h); err != nil {
		return digest.Digest{}, grpcerr.Wrapf(err, "upload %s", path)
	}
	return h.Digest(), nil
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
