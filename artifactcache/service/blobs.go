package service

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"distbuild/artifactcache/store"
	"distbuild/digest"
	"distbuild/internal/grpcerr"
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
//
// The store reserves room only for content that has arrived, so an upload
// holds no more of the cache than its client has sent; and an upload
// through which no content arrives for the idle limit is ended with
// DeadlineExceeded, its room given back before the client hears so. The
// stream is received on a goroutine of its own because only returning
// from this handler can end a stream whose client sends nothing.
func (s *Service) Write(stream grpc.ClientStreamingServer[distbuildv1.WriteRequest, distbuildv1.WriteResponse]) error {
	start := time.Now()
	u := &upload{s: s, stream: stream}
	// The idle clock starts before anything is received, so that a test
	// seeing content arrive knows the ticker exists.
	u.touch()
	ticker := s.clock.NewTicker(max(s.idleTimeout/4, time.Millisecond))
	defer ticker.Stop()
	done := make(chan error, 1)
	go func() { done <- u.receive() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				return err
			}
			s.log.Debug("upload finished", "digest", u.d, "duration", time.Since(start))
			return stream.SendAndClose(&distbuildv1.WriteResponse{CommittedSize: u.d.Size()})
		case <-ticker.C():
			idle := s.clock.Now().Sub(time.Unix(0, u.lastContent.Load()))
			if idle < s.idleTimeout {
				continue
			}
			if d, ended := u.end(); ended {
				s.log.Warn("ended an idle upload", "digest", d, "idle", idle, "received_bytes", u.received.Load())
				what := "upload"
				if d != (digest.Digest{}) {
					what = "upload of " + d.String()
				}
				return status.Errorf(codes.DeadlineExceeded,
					"%s: no content arrived for %s, the trove's upload idle limit (--upload-idle-timeout); it was dropped and nothing was stored, so send the blob again",
					what, s.idleTimeout)
			}
		}
	}
}

// upload is one Write stream: the receiving goroutine and the handler,
// which may end it for idleness, share it.
type upload struct {
	s      *Service
	stream grpc.ClientStreamingServer[distbuildv1.WriteRequest, distbuildv1.WriteResponse]
	// lastContent is when content last arrived (Unix nanoseconds on the
	// service's clock); received counts the content bytes, for the log.
	lastContent, received atomic.Int64

	mu sync.Mutex // guards the fields below and every use of w
	d  digest.Digest
	w  *store.BlobWriter
	// ended is set when the handler gave up on the stream; finishing when
	// the whole stream has arrived and is being committed, which idleness
	// no longer interrupts.
	ended, finishing bool
}

// errEnded stops the receiving goroutine of an upload the handler ended;
// nobody sees it.
var errEnded = status.Error(codes.Aborted, "upload ended by the server")

func (u *upload) touch() { u.lastContent.Store(u.s.clock.Now().UnixNano()) }

// end drops the upload for idleness, releasing its room at once, unless it
// is already being committed; it reports whether it did, and the digest
// the upload declared (zero if none arrived).
func (u *upload) end() (digest.Digest, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.finishing {
		return u.d, false
	}
	u.ended = true
	if u.w != nil {
		u.w.Abort()
	}
	return u.d, true
}

// receive reads the whole stream into a BlobWriter and commits it; a nil
// result means u.d is stored.
func (u *upload) receive() error {
	req := &distbuildv1.WriteRequest{}
	if err := u.stream.RecvMsg(req); err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "upload sent no messages; the first must declare the digest")
		}
		return err
	}
	d, err := digest.FromProto(req.GetDigest())
	if err != nil {
		return grpcerr.Wrapf(err, "first upload message must declare the digest")
	}
	u.mu.Lock()
	u.d = d
	u.mu.Unlock()
	if missing, _ := u.s.store.FindMissing([]digest.Digest{d}, nil); len(missing) == 0 {
		return nil
	}
	w, err := u.s.store.NewBlobWriter(d)
	if err != nil {
		return err
	}
	u.mu.Lock()
	if u.ended {
		w.Abort()
		u.mu.Unlock()
		return errEnded
	}
	u.w = w
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		w.Abort()
		u.mu.Unlock()
	}()
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
		if n := len(lent.GetData()); n > 0 {
			u.touch()
			u.received.Add(int64(n))
		}
		u.mu.Lock()
		err := errEnded
		if !u.ended {
			err = w.WriteAsync(lent.GetData(), func() { free <- lent })
		}
		u.mu.Unlock()
		if err != nil {
			return err
		}
		received = <-free
		if err := u.stream.RecvMsg(received); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return grpcerr.Wrapf(err, "upload of %s", d)
		}
	}
	u.mu.Lock()
	ended := u.ended
	u.finishing = !ended
	u.mu.Unlock()
	if ended {
		return errEnded
	}
	return w.Commit()
}
