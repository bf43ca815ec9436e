package service

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"distbuild/artifactcache/backend"
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
	b, err := s.store.OpenBlob(stream.Context(), d)
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
// A client that has only a file hashes it while sending instead of reading
// it twice: its first message declares only the size, and its last one the
// digest, against which the server checks the content as before. The
// server cannot then tell at once that it holds the blob; the commit finds
// it and keeps no second copy.
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
			if blob, ended := u.end(); ended {
				s.log.Warn("ended an idle upload", "blob", blob, "idle", idle, "received_bytes", u.received.Load())
				what := "upload"
				if blob != "" {
					what = "upload of " + blob
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
	// hashLater is set while d holds only the declared size: the client
	// hashes while sending and declares the digest on its last message.
	hashLater bool
	w         backend.BlobWriter
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
// is already being committed; it reports whether it did, and names the
// blob the upload declared ("" if no declaration arrived).
func (u *upload) end() (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.finishing {
		return "", false
	}
	u.ended = true
	if u.w != nil {
		u.w.Abort()
	}
	return u.whatLocked(), true
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
	w, err := u.start(req.GetDigest())
	if w == nil || err != nil {
		return err
	}
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
	// An upload that hashes while sending declares the digest on its last
	// message: closing, once it has arrived.
	hashLater := u.hashLater
	var closing *digest.Digest
	for received := req; ; {
		lent := received
		if closing != nil {
			return status.Errorf(codes.InvalidArgument, "upload of %s: a message after the one declaring the digest", closing)
		}
		if hashLater && received != req && received.GetDigest() != nil {
			d, err := digest.FromProto(received.GetDigest())
			if err != nil {
				return grpcerr.Wrapf(err, "upload of %s: the digest declared at its end", u.what())
			}
			closing = &d
		}
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
			return grpcerr.Wrapf(err, "upload of %s", u.what())
		}
	}
	if hashLater && closing == nil {
		return status.Errorf(codes.InvalidArgument, "upload of %s ended without declaring its digest; nothing was stored", u.what())
	}
	u.mu.Lock()
	ended := u.ended
	u.finishing = !ended
	if hashLater {
		u.d, u.hashLater = *closing, false
	}
	u.mu.Unlock()
	if ended {
		return errEnded
	}
	if hashLater {
		return w.CommitAs(*closing)
	}
	return w.Commit()
}

// start begins an upload whose first message declared first: the whole
// digest, or only its size when the client hashes while sending. It
// returns no writer, and no error, when the cache holds the declared blob
// already.
func (u *upload) start(first *distbuildv1.Digest) (backend.BlobWriter, error) {
	var d digest.Digest
	var err error
	hashLater := first != nil && first.GetHash() == ""
	if hashLater {
		d, err = digest.New(digest.Hash{}, first.GetSizeBytes())
	} else {
		d, err = digest.FromProto(first)
	}
	if err != nil {
		return nil, grpcerr.Wrapf(err, "first upload message must declare the digest, or its size alone")
	}
	u.mu.Lock()
	u.d, u.hashLater = d, hashLater
	u.mu.Unlock()
	var w backend.BlobWriter
	if hashLater {
		w, err = u.s.store.NewBlobWriterOfSize(u.stream.Context(), d.Size())
	} else {
		missing, _, ferr := u.s.store.FindMissing(u.stream.Context(), []digest.Digest{d}, nil)
		if ferr != nil || len(missing) == 0 {
			return nil, ferr
		}
		w, err = u.s.store.NewBlobWriter(u.stream.Context(), d)
	}
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ended {
		w.Abort()
		return nil, errEnded
	}
	u.w = w
	return w, nil
}

// what names the blob being uploaded in messages.
func (u *upload) what() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.whatLocked()
}

func (u *upload) whatLocked() string {
	switch {
	case u.d == (digest.Digest{}) && !u.hashLater:
		return ""
	case u.hashLater:
		return fmt.Sprintf("a blob of %d bytes", u.d.Size())
	}
	return u.d.String()
}
