package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"distbuild/artifactcache/backend"
	"distbuild/digest"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// abortTimeout bounds the request that abandons a failed multipart upload.
const abortTimeout = 30 * time.Second

// copyTimeout bounds the copy, inside the store, of an upload whose digest
// came at its end to the blob's name.
const copyTimeout = 10 * time.Minute

// partsInFlight is how many parts of one upload go to the store at once:
// one request at a time leaves the store idle while each part is signed
// and sent. An upload holds at most partsInFlight+1 parts in memory.
const partsInFlight = 3

// NewBlobWriter starts an upload of blob d. Nothing is sent until a whole
// part has arrived; a blob that fits in one part goes up in a single PUT at
// Commit.
func (s *Store) NewBlobWriter(ctx context.Context, d digest.Digest) (backend.BlobWriter, error) {
	return s.newBlobWriter(ctx, d, s.blobName(d.Hash())), nil
}

// NewBlobWriterOfSize starts an upload whose digest comes after its
// content. Its parts go to a temporary object under PREFIX/uploads/, which
// CommitAs, once the digest has matched, copies to the blob's name (a copy
// inside the store) and deletes; a blob that fits in one part is PUT under
// its name at once.
func (s *Store) NewBlobWriterOfSize(ctx context.Context, size int64) (backend.BlobWriter, error) {
	d, err := digest.New(digest.Hash{}, size)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	rand.Read(id)
	w := s.newBlobWriter(ctx, d, s.prefix+"uploads/"+hex.EncodeToString(id))
	w.hashLater = true
	w.label = w.what()
	return w, nil
}

func (s *Store) newBlobWriter(ctx context.Context, d digest.Digest, name string) *blobWriter {
	ctx, cancel := context.WithCancel(ctx)
	w := &blobWriter{
		s: s, d: d, name: name, ctx: ctx, cancel: cancel, h: digest.NewHasher(),
		free:   make(chan []byte, partsInFlight+1),
		parts:  make(chan []byte),
		upDone: make(chan struct{}),
		failCh: make(chan struct{}),
		label:  d.String(),
	}
	// The part buffers, allocated when first needed and only as large as
	// the rest of the blob: one filling while the others are sent.
	for range partsInFlight + 1 {
		w.free <- nil
	}
	return w
}

// blobWriter uploads one blob as a multipart upload, verified before it is
// completed. Its methods are called by one goroutine at a time.
type blobWriter struct {
	s    *Store
	d    digest.Digest
	name string // where the parts go: the blob's name, or a temporary one
	// hashLater is set while d holds only the size: the digest comes
	// with CommitAs.
	hashLater bool
	label     string // names the blob in the sender's messages, fixed at the start
	ctx       context.Context
	cancel    context.CancelFunc
	h         *digest.Hasher

	written  int64  // content bytes received
	cur      []byte // the part being filled
	free     chan []byte
	parts    chan []byte          // full parts for the sender, in order
	sending  bool                 // the sender goroutine runs
	upDone   chan struct{}        // closed when the sender has ended
	upErr    error                // the sender's first error; read after failCh or upDone closes
	failCh   chan struct{}        // closed when the sender has failed
	uploadID string               // set by the sender
	done     []minio.CompletePart // by part number - 1; read after upDone

	failed   error
	finished bool
}

// WriteAsync copies p into the current part (so release runs before it
// returns), hashing it on the way, and hands each full part to the
// sender. It waits when every part buffer is busy, which bounds the
// memory an upload holds to partsInFlight+1 parts.
func (w *blobWriter) WriteAsync(p []byte, release func()) error {
	if err := w.write(p); err != nil {
		return err
	}
	if release != nil {
		release()
	}
	return nil
}

func (w *blobWriter) write(p []byte) error {
	switch {
	case w.finished:
		return status.Error(codes.FailedPrecondition, "upload already finished")
	case w.failed != nil:
		return w.failed
	case w.written+int64(len(p)) > w.d.Size():
		w.failed = status.Errorf(codes.InvalidArgument, "upload of %s: more than the declared %d bytes", w.d, w.d.Size())
		return w.failed
	}
	w.h.Write(p)
	for len(p) > 0 {
		if w.cur == nil {
			buf, err := w.takeBuffer()
			if err != nil {
				w.failed = err
				return err
			}
			w.cur = buf
		}
		n := copy(w.cur[len(w.cur):cap(w.cur)], p)
		w.cur = w.cur[:len(w.cur)+n]
		p = p[n:]
		w.written += int64(n)
		// A full part goes out now, unless it is the last one, which
		// waits for Commit to check the digest first.
		if len(w.cur) == cap(w.cur) && w.written < w.d.Size() {
			if err := w.sendPart(); err != nil {
				w.failed = err
				return err
			}
		}
	}
	return nil
}

// takeBuffer waits for a free part buffer.
func (w *blobWriter) takeBuffer() ([]byte, error) {
	select {
	case buf := <-w.free:
		if size := min(w.s.partSize, w.d.Size()-w.written); int64(cap(buf)) < size {
			buf = make([]byte, 0, size)
		}
		return buf[:0], nil
	case <-w.failCh:
		return nil, w.upErr
	case <-w.ctx.Done():
		select {
		case <-w.failCh: // the failure that cancelled the context
			return nil, w.upErr
		default:
			return nil, status.FromContextError(w.ctx.Err()).Err()
		}
	}
}

// sendPart hands the current part to the sender, starting it first.
func (w *blobWriter) sendPart() error {
	if !w.sending {
		w.sending = true
		go w.sender()
	}
	select {
	case w.parts <- w.cur:
		w.cur = nil
		return nil
	case <-w.failCh:
		return w.upErr
	}
}

// sender starts the multipart upload with the first part and uploads the
// parts, partsInFlight at a time, until the parts channel closes; after a
// failure it only takes the remaining parts off the channel.
func (w *blobWriter) sender() {
	defer close(w.upDone)
	var mu sync.Mutex // guards upErr and done while uploads run
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if w.upErr == nil {
			w.upErr = err
			close(w.failCh)
			w.cancel()
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return w.upErr != nil
	}
	var uploads sync.WaitGroup
	defer uploads.Wait()
	sem := make(chan struct{}, partsInFlight)
	n := 0
	for part := range w.parts {
		n++
		partNo := n
		if failed() {
			continue
		}
		if w.uploadID == "" {
			id, err := w.s.core.NewMultipartUpload(w.ctx, w.s.bucket, w.name, minio.PutObjectOptions{})
			if err != nil {
				fail(w.s.s3Status(err, "start upload of %s", w.label))
				continue
			}
			w.uploadID = id
		}
		sem <- struct{}{}
		uploads.Go(func() {
			defer func() { <-sem }()
			got, err := w.s.core.PutObjectPart(w.ctx, w.s.bucket, w.name, w.uploadID, partNo, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
			if err != nil {
				fail(w.s.s3Status(err, "upload part %d of %s", partNo, w.label))
				return
			}
			mu.Lock()
			for len(w.done) < partNo {
				w.done = append(w.done, minio.CompletePart{})
			}
			w.done[partNo-1] = minio.CompletePart{PartNumber: partNo, ETag: got.ETag}
			mu.Unlock()
			w.free <- part
		})
	}
}

// CommitAs is Commit for an upload started by NewBlobWriterOfSize, with
// the digest its client declared after the content.
func (w *blobWriter) CommitAs(d digest.Digest) error {
	switch {
	case !w.hashLater:
		return status.Error(codes.FailedPrecondition, "the upload's digest was declared at its start")
	case d.Size() != w.d.Size():
		w.Abort()
		return status.Errorf(codes.InvalidArgument, "upload declared %d bytes at its start and %s at its end; nothing was stored", w.d.Size(), d)
	}
	w.d, w.hashLater = d, false
	return w.Commit()
}

// what names the blob in messages.
func (w *blobWriter) what() string {
	if w.hashLater {
		return fmt.Sprintf("a blob of %d bytes", w.d.Size())
	}
	return w.d.String()
}

// Commit checks the digest and only then sends the last part and
// completes the upload, which is when the blob appears in the bucket.
func (w *blobWriter) Commit() error {
	switch {
	case w.finished:
		return status.Error(codes.FailedPrecondition, "upload already finished")
	case w.hashLater:
		return status.Error(codes.FailedPrecondition, "the upload's hash is not declared yet; use CommitAs")
	}
	if w.failed != nil {
		w.Abort()
		return w.failed
	}
	got := w.h.Digest()
	switch {
	case got.Size() != w.d.Size():
		w.Abort()
		return status.Errorf(codes.InvalidArgument, "upload of %s ended after %d of %d bytes", w.d, got.Size(), w.d.Size())
	case got != w.d:
		w.Abort()
		return status.Errorf(codes.InvalidArgument, "upload declared as %s hashes to %s; nothing was stored", w.d, got)
	}
	if !w.sending {
		// The whole blob is one part: one PUT, visible once complete.
		_, err := w.s.core.PutObject(w.ctx, w.s.bucket, w.s.blobName(w.d.Hash()), bytes.NewReader(w.cur), int64(len(w.cur)), "", "", minio.PutObjectOptions{})
		w.finish()
		if err != nil {
			return w.s.s3Status(err, "store blob %s", w.d)
		}
		w.s.log.Debug("stored blob", "digest", w.d)
		return nil
	}
	if err := w.sendPart(); err != nil {
		w.Abort()
		return err
	}
	close(w.parts)
	<-w.upDone
	if w.upErr != nil {
		w.Abort()
		return w.upErr
	}
	_, err := w.s.core.CompleteMultipartUpload(w.ctx, w.s.bucket, w.name, w.uploadID, w.done, minio.PutObjectOptions{})
	if err != nil {
		w.Abort()
		return w.s.s3Status(err, "complete upload of %s", w.d)
	}
	w.finish()
	if err := w.moveToBlobName(); err != nil {
		return err
	}
	w.s.log.Debug("stored blob", "digest", w.d, "parts", len(w.done))
	return nil
}

// moveToBlobName copies a completed temporary object to the blob's name,
// where it appears whole, and deletes it.
func (w *blobWriter) moveToBlobName() error {
	final := w.s.blobName(w.d.Hash())
	if w.name == final {
		return nil
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
		defer cancel()
		if err := w.s.core.RemoveObject(ctx, w.s.bucket, w.name, minio.RemoveObjectOptions{}); err != nil {
			w.s.log.Warn("could not delete a temporary upload object", "object", w.name, "error", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), copyTimeout)
	defer cancel()
	_, err := w.s.core.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: w.s.bucket, Object: final},
		minio.CopySrcOptions{Bucket: w.s.bucket, Object: w.name})
	if err != nil {
		return w.s.s3Status(err, "move the upload of %s to its name", w.d)
	}
	return nil
}

func (w *blobWriter) finish() {
	w.finished = true
	w.cancel()
}

// Abort stops the sender and abandons the multipart upload, so the store
// can drop its parts; it is safe after Commit. An abandon that fails
// (the store unreachable) leaves only parts, never an object: a bucket
// lifecycle rule for incomplete multipart uploads reclaims them.
func (w *blobWriter) Abort() {
	if w.finished {
		return
	}
	w.finish()
	if !w.sending {
		return
	}
	select {
	case <-w.upDone:
	default:
		close(w.parts)
		<-w.upDone
	}
	if w.uploadID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
	defer cancel()
	if err := w.s.core.AbortMultipartUpload(ctx, w.s.bucket, w.name, w.uploadID); err != nil && !isNotFound(err) {
		w.s.log.Warn("could not abandon a multipart upload; its parts stay until a lifecycle rule removes them", "digest", w.d, "error", err)
	}
}
