package artifactcache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"distbuild/artifactcache/internal/wire"
	"distbuild/digest"
	"distbuild/internal/grpcerr"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Fetch writes blob d to w, hashing it as it arrives. It fails with
// DataLoss if what arrived does not match d. On any error w may already
// hold part of the content, which the caller must discard; Download does
// that for files.
func (c *Client) Fetch(ctx context.Context, d digest.Digest, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Read(ctx, &distbuildv1.ReadRequest{Digest: d.Proto()}, wire.ContentCodec())
	if err != nil {
		return grpcerr.Wrapf(err, "fetch %s", d)
	}
	var received int64
	// Chunks arrive alternately in two messages, so the one just received
	// stays intact while the next one arrives; the cache's codec reuses
	// each message's buffer instead of allocating one per chunk.
	var msgs [2]distbuildv1.ReadResponse
	next := 0
	// recv returns the next chunk, or more=false at the end.
	recv := func() (chunk []byte, more bool, err error) {
		resp := &msgs[next]
		next = 1 - next
		err = stream.RecvMsg(resp)
		if errors.Is(err, io.EOF) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, grpcerr.Wrapf(err, "fetch %s", d)
		}
		if received += int64(len(resp.GetData())); received > d.Size() {
			return nil, false, status.Errorf(codes.DataLoss, "fetch %s: server sent more than %d bytes", d, d.Size())
		}
		return resp.GetData(), true, nil
	}
	h := digest.NewHasher()
	chunk, more, err := recv()
	for err == nil && more {
		// Hash this chunk while the next one arrives.
		var next []byte
		err = h.WriteWhile(chunk, func() error {
			var err error
			next, more, err = recv()
			return err
		})
		if _, werr := w.Write(chunk); werr != nil {
			return status.Errorf(codes.Internal, "fetch %s: %v", d, werr)
		}
		chunk = next
	}
	if err != nil {
		return err
	}
	if got := h.Digest(); got != d {
		return status.Errorf(codes.DataLoss, "fetch %s: received content hashes to %s", d, got)
	}
	return nil
}

// Download stores blob d at path. The content goes to a temporary file in
// the same directory and is renamed into place only once verified and
// synced, so path holds either the complete, correct blob or whatever it
// held before.
func (c *Client) Download(ctx context.Context, d digest.Digest, path string) error {
	return c.DownloadWithProgress(ctx, d, path, nil)
}

// DownloadWithProgress is Download, calling progress (when not nil) each
// time content arrives, so a caller can tell a slow transfer from a stalled
// one and give up on the latter.
func (c *Client) DownloadWithProgress(ctx context.Context, d digest.Digest, path string, progress func()) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return status.Errorf(codes.Internal, "download %s: %v", d, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var w io.Writer = f
	if progress != nil {
		w = progressWriter{w: f, progress: progress}
	}
	if err := c.Fetch(ctx, d, w); err != nil {
		return grpcerr.Wrapf(err, "download to %s", path)
	}
	if err := f.Chmod(0o644); err != nil {
		return status.Errorf(codes.Internal, "download %s: %v", d, err)
	}
	if err := f.Sync(); err != nil {
		return status.Errorf(codes.Internal, "download %s: %v", d, err)
	}
	if err := f.Close(); err != nil {
		return status.Errorf(codes.Internal, "download %s: %v", d, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return status.Errorf(codes.Internal, "download %s: %v", d, err)
	}
	committed = true
	return syncDir(dir)
}

// syncDir makes the rename into place durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return status.Errorf(codes.Internal, "sync %s: %v", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return status.Errorf(codes.Internal, "sync %s: %v", dir, err)
	}
	return nil
}

// progressWriter reports each write that delivers content.
type progressWriter struct {
	w        io.Writer
	progress func()
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}
