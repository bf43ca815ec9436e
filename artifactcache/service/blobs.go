package service

import (
	"errors"
	"io"
	"time"

	"distbuild/artifactcache/digest"
	"distbuild/artifactcache/internal/grpcerr"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Read streams (part of) a blob. The store checks each block against its
// checksum before sending it and ends the stream with DataLoss, before the
// first damaged byte, if the blob has rotted.
func (s *Service) Read(req *distbuildv1.ReadRequest, stream grpc.ServerStreamingServer[distbuildv1.ReadResponse]) error {
	d, err := digest.FromProto(req.GetDigest())
	if err != nil {
		return err
	}
	b, err := s.store.OpenBlob(d)
	if err != nil {
		return err
	}
	defer b.Close()
	resp := &distbuildv1.ReadResponse{}
	return b.Stream(stream.Context(), req.GetOffset(), req.GetLimit(), func(chunk []byte) error {
		resp.Data = chunk
		return stream.Send(resp)
	})
}

// uploadBuffers is how many messages of one upload can be in memory at
// once: one being received and the rest queued for hashing and writing.
const uploadBuffers = 6

// Write receives one upload. A blob the store already holds is confirmed
// at once, without reading the rest of the stream: the client learns that
// there is nothing to send. Otherwise every byte is hashed as it arrives
// and the blob is kept only if all of it matches the declared digest.
func (s *Service) Write(stream grpc.ClientStreamingServer[distbuildv1.WriteRequest, distbuildv1.WriteResponse]) error {
	start := time.Now()
	req := &distbuildv1.WriteRequest{}
	if err := stream.RecvMsg(req); err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "upload sent no messages; the first must declare the digest")
		}
		return err
	}
	d, err := digest.FromProto(req.GetDigest())
	if err != nil {
		return grpcerr.Wrapf(err, "first upload message must declare the digest")
	}
	if missing, _ := s.store.FindMissing([]digest.Digest{d}, nil); len(missing) == 0 {
		return stream.SendAndClose(&distbuildv1.WriteResponse{CommittedSize: d.Size()})
	}
	w, err := s.store.NewBlobWriter(d)
	if err != nil {
		return err
	}
	defer w.Abort()
	// Messages are received into a few requests in turn, each lent to the
	// writer until it has hashed and written the content, so receiving,
	// hashing and writing all go on at once; the codec reuses each
	// request's buffer instead of allocating one per chunk.
	free := make(chan *distbuildv1.WriteRequest, uploadBuffers)
	for range uploadBuffers - 1 {
		free <- &distbuildv1.WriteRequest{}
	}
	for received := req; ; {
		lent := received
		if err := w.WriteAsync(lent.GetData(), func() { free <- lent }); err != nil {
			return err
		}
		received = <-free
		if err := stream.RecvMsg(received); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return grpcerr.Wrapf(err, "upload of %s", d)
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	s.log.Debug("upload finished", "digest", d, "duration", time.Since(start))
	return stream.SendAndClose(&distbuildv1.WriteResponse{CommittedSize: d.Size()})
}
