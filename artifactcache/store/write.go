package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"distbuild/digest"
	"distbuild/internal/grpcerr"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// writebackUnit is how much of an upload accumulates before the kernel is
// asked to start writing it to disk (see startWriteback).
const writebackUnit = 8 << 20

// pipelineDepth is how many pieces of content each stage of a BlobWriter
// may have queued: enough that a stage's hiccup (a page-cache stall, a
// descheduled goroutine) does not stall the other.
const pipelineDepth = 4

// BlobWriter receives one upload. Content goes to a temporary file in the
// store's file system while being hashed; Commit checks length and hash and
// only then renames the file into place. Anything that goes wrong leaves
// nothing behind: Abort (or a failed Commit) deletes the temporary file and
// returns the reserved space.
//
// Room is reserved (and, if need be, made by eviction) as content arrives,
// never for the declared size up front: each piece reserves exactly its
// own length before it is written. Reserving the declared size at the
// start let one client that declared a blob as big as the cache and then
// sent nothing evict every artifact and refuse all other uploads for as
// long as its stream stayed open. Growing with what has arrived bounds
// what an upload can take by what its client has actually sent, which a
// per-stream or per-client cap could not do without also refusing honest
// large uploads; an upload that stops sending is ended by its server's idle
// limit (see service.Options.UploadIdleTimeout), which gives its room back.
//
// Hashing and writing run as two stages on goroutines of their own, each
// taking pieces of content from a queue, so that on two cores the hash,
// the slowest part of an upload, runs back to back instead of waiting for
// each piece's write and for the network in turn.
type BlobWriter struct {
	s        *Store
	d        digest.Digest
	f        *os.File
	h        *digest.Hasher
	sums     checksummer
	written  int64 // content accepted so far
	reserved int64 // room held in the store's reservations, at most written
	finished bool
	// hashLater is set while d holds only the size: the client declares
	// the hash after the content (see NewBlobWriterOfSize).
	hashLater bool

	hashQ, fileQ chan *piece
	stages       sync.WaitGroup
	// fileErr is the file stage's first failure; once set, the file is
	// behind the hash and Commit must refuse.
	fileErr atomic.Pointer[error]
	failed  error // a refusal (too much content) or fileErr, sticky
}

// piece is content on its way through both stages; release runs when
// both are done with it.
type piece struct {
	p       []byte
	pending atomic.Int32
	release func()
}

func (pc *piece) done() {
	if pc.pending.Add(-1) == 0 && pc.release != nil {
		pc.release()
	}
}

// NewBlobWriter starts an upload of the blob with digest d. A blob larger
// than the whole cache is refused with ResourceExhausted before any
// content is sent; room for the rest is reserved piece by piece as
// WriteAsync receives it, so starting an upload evicts nothing.
func (s *Store) NewBlobWriter(d digest.Digest) (*BlobWriter, error) {
	return s.newBlobWriter(d, false)
}

// NewBlobWriterOfSize starts an upload of size bytes whose hash its client
// declares only once it has sent them all (it hashes while sending), and
// which CommitAs completes; otherwise it is NewBlobWriter.
func (s *Store) NewBlobWriterOfSize(size int64) (*BlobWriter, error) {
	d, err := digest.New(digest.Hash{}, size)
	if err != nil {
		return nil, err
	}
	return s.newBlobWriter(d, true)
}

func (s *Store) newBlobWriter(d digest.Digest, hashLater bool) (*BlobWriter, error) {
	w := &BlobWriter{s: s, d: d, hashLater: hashLater}
	if s.maxSize > 0 && d.Size() > s.maxSize {
		return nil, status.Errorf(codes.ResourceExhausted, "blob %s is larger than the whole cache (%d bytes); raise the trove's --max-size to store it", w.what(), s.maxSize)
	}
	f, err := os.CreateTemp(s.dirs.tmpDir(), "upload-*")
	if err != nil {
		return nil, ioStatus(err, "create temporary file for %s", w.what())
	}
	w.f, w.h = f, digest.NewHasher()
	w.hashQ = make(chan *piece, pipelineDepth)
	w.fileQ = make(chan *piece, pipelineDepth)
	w.stages.Add(2)
	go w.hashStage()
	go w.fileStage()
	return w, nil
}

// hashStage hashes pieces in order as they come.
func (w *BlobWriter) hashStage() {
	defer w.stages.Done()
	for pc := range w.hashQ {
		w.h.Write(pc.p)
		pc.done()
	}
}

// fileStage writes pieces to the temporary file, taking their block
// checksums on the way, until one write fails; it then only lets the
// remaining pieces go.
func (w *BlobWriter) fileStage() {
	defer w.stages.Done()
	var written int64
	for pc := range w.fileQ {
		if w.fileErr.Load() == nil {
			if err := w.writeFile(pc.p, written); err != nil {
				err = ioStatus(err, "write upload of %s", w.what())
				w.fileErr.Store(&err)
			}
			written += int64(len(pc.p))
		}
		pc.done()
	}
}

// writeFile appends p, which starts at offset off, to the file, and has
// the kernel start writing each completed writebackUnit to disk.
func (w *BlobWriter) writeFile(p []byte, off int64) error {
	w.sums.Write(p)
	if _, err := w.f.Write(p); err != nil {
		return err
	}
	if end := off + int64(len(p)); end/writebackUnit > off/writebackUnit {
		start := off / writebackUnit * writebackUnit
		startWriteback(w.f, start, end/writebackUnit*writebackUnit-start)
	}
	return nil
}

// WriteAsync adds the next content bytes without waiting for them to be
// hashed and written; release (if not nil) runs once both are done, and
// until then p must not change. It first reserves room for p, evicting
// least recently used artifacts if need be, and refuses p with
// ResourceExhausted when the rest of the cache is in use. Content beyond
// the declared size is refused at once rather than at Commit, so a lying
// client cannot fill the disk, and so is anything after a failed write.
func (w *BlobWriter) WriteAsync(p []byte, release func()) error {
	switch {
	case w.finished:
		return status.Error(codes.FailedPrecondition, "upload already finished")
	case w.failed != nil:
		return w.failed
	case w.fileErr.Load() != nil:
		w.failed = *w.fileErr.Load()
		return w.failed
	case w.written+int64(len(p)) > w.d.Size():
		w.failed = status.Errorf(codes.InvalidArgument, "upload of %s: more than the declared %d bytes", w.what(), w.d.Size())
		return w.failed
	}
	if err := w.s.reserve(int64(len(p))); err != nil {
		w.failed = grpcerr.Wrapf(err, "upload of %s after %d bytes", w.what(), w.written)
		return w.failed
	}
	w.reserved += int64(len(p))
	w.written += int64(len(p))
	pc := &piece{p: p, release: release}
	pc.pending.Store(2)
	w.hashQ <- pc
	w.fileQ <- pc
	return nil
}

// drain ends both stages once they have finished what is queued.
func (w *BlobWriter) drain() {
	close(w.hashQ)
	close(w.fileQ)
	w.stages.Wait()
}

// what names the blob in messages.
func (w *BlobWriter) what() string {
	if w.hashLater {
		return fmt.Sprintf("a blob of %d bytes", w.d.Size())
	}
	return w.d.String()
}

// CommitAs is Commit for an upload started with NewBlobWriterOfSize: d is
// the digest its client declared after the content, which must be of the
// size declared at the start.
func (w *BlobWriter) CommitAs(d digest.Digest) error {
	if !w.hashLater {
		return status.Error(codes.FailedPrecondition, "the upload's digest was declared at its start")
	}
	if d.Size() != w.d.Size() {
		w.Abort()
		return status.Errorf(codes.InvalidArgument, "upload declared %d bytes at its start and %s at its end; nothing was stored", w.d.Size(), d)
	}
	w.d, w.hashLater = d, false
	return w.Commit()
}

// Commit stores the blob if the content received matches the declared
// digest. When the blob is already present (a concurrent upload of the
// same content won), the temporary file is discarded and Commit succeeds:
// there is never a second copy.
func (w *BlobWriter) Commit() error {
	switch {
	case w.finished:
		return status.Error(codes.FailedPrecondition, "upload already finished")
	case w.hashLater:
		return status.Error(codes.FailedPrecondition, "the upload's hash is not declared yet; use CommitAs")
	}
	w.drain()
	if err := w.fileErr.Load(); err != nil && w.failed == nil {
		w.failed = *err
	}
	if w.failed != nil {
		w.abort()
		return w.failed
	}
	got := w.h.Digest()
	if got.Size() != w.d.Size() {
		w.abort()
		return status.Errorf(codes.InvalidArgument, "upload of %s ended after %d of %d bytes", w.d, got.Size(), w.d.Size())
	}
	if got != w.d {
		w.abort()
		return status.Errorf(codes.InvalidArgument, "upload declared as %s hashes to %s; nothing was stored", w.d, got)
	}
	if err := w.f.Sync(); err != nil {
		w.abort()
		return ioStatus(err, "sync upload of %s", w.d)
	}
	if err := w.f.Close(); err != nil {
		w.abort()
		return ioStatus(err, "close upload of %s", w.d)
	}
	w.finished = true
	return w.s.commit(w.d, w.reserved, w.sums.checksums(), w.f.Name())
}

// Abort discards the upload. It is safe to call after Commit, so callers
// can defer it.
func (w *BlobWriter) Abort() {
	if w.finished {
		return
	}
	w.drain()
	w.abort()
}

// abort discards the upload once the stages have ended.
func (w *BlobWriter) abort() {
	w.finished = true
	w.f.Close()
	os.Remove(w.f.Name())
	w.s.release(w.reserved)
	w.reserved = 0
}

// reserve makes room for n more bytes of an upload in progress and holds
// it, so that concurrent uploads cannot overshoot the limit together.
func (s *Store) reserve(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.makeRoomLocked(n); err != nil {
		return err
	}
	s.cat.reserved += n
	return nil
}

func (s *Store) release(reserved int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cat.reserved -= reserved
}

// commit moves a verified, synced temporary file into place and records
// it, turning the upload's reservation into used space. The file is
// renamed (and its directory synced) before the index names it; a crash in
// between leaves an unindexed file that Open adopts.
func (s *Store) commit(d digest.Digest, reserved int64, sums blockChecksums, tmp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cat.reserved -= reserved
	now := s.now()
	if _, ok := s.cat.blobs[d.Hash()]; ok {
		os.Remove(tmp)
		s.cat.touchBlob(d.Hash(), now)
		s.log.Debug("blob already stored; dropped the duplicate upload", "digest", d)
		return nil
	}
	path := s.dirs.blobPath(d.Hash())
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return ioStatus(err, "move %s into place", d)
	}
	if err := syncDir(s.dirs.shardDir(d.Hash())); err != nil {
		os.Remove(path)
		return ioStatus(err, "sync directory of %s", d)
	}
	if err := s.ix.putBlob(d, sums, now); err != nil {
		os.Remove(path)
		return status.Errorf(codes.Internal, "index %s: %v", d, err)
	}
	s.cat.addBlob(d, now)
	s.log.Info("stored blob", "digest", d)
	return nil
}

// ioStatus reports a local I/O failure; a full disk is ResourceExhausted,
// which tells a client to back off rather than to report a bug.
func ioStatus(err error, format string, args ...any) error {
	code := codes.Internal
	if errors.Is(err, syscall.ENOSPC) {
		code = codes.ResourceExhausted
	}
	return status.Errorf(code, format+": %v", append(args, err)...)
}
