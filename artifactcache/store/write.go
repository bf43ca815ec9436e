package store

import (
	"errors"
	"os"
	"syscall"

	"distbuild/artifactcache/digest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// writebackUnit is how much of an upload accumulates before the kernel is
// asked to start writing it to disk (see startWriteback).
const writebackUnit = 8 << 20

// BlobWriter receives one upload. Content goes to a temporary file in the
// store's file system while being hashed; Commit checks length and hash and
// only then renames the file into place. Anything that goes wrong leaves
// nothing behind: Abort (or a failed Commit) deletes the temporary file and
// returns the reserved space.
type BlobWriter struct {
	s        *Store
	d        digest.Digest
	f        *os.File
	h        *digest.Hasher
	sums     checksummer
	written  int64
	failed   error // a failed Write leaves the file behind the hash, so Commit must refuse
	finished bool
}

// NewBlobWriter starts an upload of the blob with digest d, first making
// room for its declared size (evicting if need be). A blob larger than the
// whole cache, or one that cannot fit because the rest is in use, is
// refused with ResourceExhausted before any content is sent.
func (s *Store) NewBlobWriter(d digest.Digest) (*BlobWriter, error) {
	if s.maxSize > 0 && d.Size() > s.maxSize {
		return nil, status.Errorf(codes.ResourceExhausted, "blob %s is larger than the whole cache (%d bytes)", d, s.maxSize)
	}
	s.mu.Lock()
	err := s.makeRoomLocked(d.Size())
	if err == nil {
		s.cat.reserved += d.Size()
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.dirs.tmpDir(), "upload-*")
	if err != nil {
		s.release(d.Size())
		return nil, ioStatus(err, "create temporary file for %s", d)
	}
	return &BlobWriter{s: s, d: d, f: f, h: digest.NewHasher()}, nil
}

// Write adds the next content bytes. Content beyond the declared size is
// refused at once rather than at Commit, so a lying client cannot fill
// the disk.
func (w *BlobWriter) Write(p []byte) (int, error) {
	switch {
	case w.finished:
		return 0, status.Error(codes.FailedPrecondition, "upload already finished")
	case w.failed != nil:
		return 0, w.failed
	case w.written+int64(len(p)) > w.d.Size():
		w.failed = status.Errorf(codes.InvalidArgument, "upload of %s: more than the declared %d bytes", w.d, w.d.Size())
		return 0, w.failed
	}
	err := w.h.WriteWhile(p, func() error {
		w.sums.Write(p)
		if _, err := w.f.Write(p); err != nil {
			return err
		}
		if done := w.written + int64(len(p)); done/writebackUnit > w.written/writebackUnit {
			start := w.written / writebackUnit * writebackUnit
			startWriteback(w.f, start, done/writebackUnit*writebackUnit-start)
		}
		return nil
	})
	if err != nil {
		w.failed = ioStatus(err, "write upload of %s", w.d)
		return 0, w.failed
	}
	w.written += int64(len(p))
	return len(p), nil
}

// Commit stores the blob if the content received matches the declared
// digest. When the blob is already present (a concurrent upload of the
// same content won), the temporary file is discarded and Commit succeeds:
// there is never a second copy.
func (w *BlobWriter) Commit() error {
	if w.finished {
		return status.Error(codes.FailedPrecondition, "upload already finished")
	}
	if w.failed != nil {
		w.Abort()
		return w.failed
	}
	got := w.h.Digest()
	if got.Size() != w.d.Size() {
		w.Abort()
		return status.Errorf(codes.InvalidArgument, "upload of %s ended after %d of %d bytes", w.d, got.Size(), w.d.Size())
	}
	if got != w.d {
		w.Abort()
		return status.Errorf(codes.InvalidArgument, "upload declared as %s hashes to %s; nothing was stored", w.d, got)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return ioStatus(err, "sync upload of %s", w.d)
	}
	if err := w.f.Close(); err != nil {
		w.Abort()
		return ioStatus(err, "close upload of %s", w.d)
	}
	w.finished = true
	return w.s.commit(w.d, w.sums.checksums(), w.f.Name())
}

// Abort discards the upload. It is safe to call after Commit, so callers
// can defer it.
func (w *BlobWriter) Abort() {
	if w.finished {
		return
	}
	w.finished = true
	w.f.Close()
	os.Remove(w.f.Name())
	w.s.release(w.d.Size())
}

func (s *Store) release(reserved int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cat.reserved -= reserved
}

// commit moves a verified, synced temporary file into place and records
// it. The file is renamed (and its directory synced) before the index
// names it; a crash in between leaves an unindexed file that Open adopts.
func (s *Store) commit(d digest.Digest, sums blockChecksums, tmp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cat.reserved -= d.Size()
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
