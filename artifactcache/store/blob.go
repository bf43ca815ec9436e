package store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"

	"distbuild/digest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Blob is an open, pinned blob: eviction leaves it alone until Close, so a
// slow download never has its file deleted underneath it.
//
// A blob without valid block checksums in the index (one stored before
// there were any, or whose record was damaged) is re-hashed whole by its
// first read, which records them, or quarantines the blob if its content
// no longer matches its digest. Opening a store never waits for that.
type Blob struct {
	s      *Store
	d      digest.Digest
	f      *os.File
	sums   blockChecksums
	sumsOK bool // sums is the index's valid record
	closed bool
}

// OpenBlob opens and pins a blob for reading, counting as a use of it.
func (s *Store) OpenBlob(d digest.Digest) (*Blob, error) {
	return s.openBlob(d, true)
}

// openBlob lets a scrub read a blob without making it look recently used.
func (s *Store) openBlob(d digest.Digest, isUse bool) (*Blob, error) {
	s.mu.Lock()
	if !s.cat.hasBlob(d) {
		s.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "blob %s not in the cache", d)
	}
	s.cat.pin(d.Hash())
	if isUse {
		s.cat.touchBlob(d.Hash(), s.now())
	}
	s.mu.Unlock()
	sums, sumsOK, err := s.ix.checksums(d)
	if err != nil {
		s.unpin(d.Hash())
		return nil, status.Errorf(codes.Internal, "open blob %s: %v", d, err)
	}
	f, err := os.Open(s.dirs.blobPath(d.Hash()))
	if err == nil {
		return &Blob{s: s, d: d, f: f, sums: sums, sumsOK: sumsOK}, nil
	}
	s.unpin(d.Hash())
	if !errors.Is(err, os.ErrNotExist) {
		return nil, ioStatus(err, "open blob %s", d)
	}
	// Someone deleted the file behind the store's back: forget the blob
	// and its manifests so the steps that made them are rebuilt.
	s.mu.Lock()
	dropped, ferr := s.forgetBlobsLocked([]digest.Hash{d.Hash()})
	s.mu.Unlock()
	s.log.Error("blob file vanished; forgot the blob", "digest", d, "manifests_dropped", dropped, "error", ferr)
	return nil, status.Errorf(codes.NotFound, "blob %s not in the cache (its file has vanished)", d)
}

func (s *Store) unpin(h digest.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cat.unpin(h)
}

// ReadAt reads the stored bytes without checking them; callers that hand
// bytes to others call CheckBlocks first or use Stream.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// Close releases the file and the pin. It is safe to call twice.
func (b *Blob) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.s.unpin(b.d.Hash())
	return b.f.Close()
}

// CheckBlocks checks every block of the blob against its checksum, for a
// caller that must know the whole blob is intact before sending any of it.
// A damaged blob is quarantined (dropping the manifests naming it) and
// CheckBlocks returns DataLoss.
func (b *Blob) CheckBlocks(ctx context.Context) error {
	if err := b.ensureChecksums(ctx); err != nil {
		return err
	}
	buf := getBuffer()
	defer putBuffer(buf)
	for i := range b.sums {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		if _, err := b.readBlock(ctx, *buf, int64(i)); err != nil {
			return err
		}
	}
	return nil
}

// ensureChecksums gives a blob without valid block checksums its record,
// by re-hashing it whole (see Blob).
func (b *Blob) ensureChecksums(ctx context.Context) error {
	if b.sumsOK {
		return nil
	}
	_, err := b.verify(ctx)
	return err
}

// verify re-hashes the whole blob, as a scrub does, and says which
// manifests a quarantine dropped. A blob whose content matches its digest
// but not its recorded block checksums (or that has no valid record) has a
// damaged index entry, which is rewritten.
func (b *Blob) verify(ctx context.Context) ([]digest.CacheKey, error) {
	info, err := b.f.Stat()
	if err != nil {
		return nil, ioStatus(err, "stat blob %s", b.d)
	}
	if info.Size() != b.d.Size() {
		return b.corrupt("file has the wrong size")
	}
	got, sums, err := hashContent(ctx, io.NewSectionReader(b.f, 0, b.d.Size()))
	if _, isStatus := status.FromError(err); err != nil && !isStatus {
		err = ioStatus(err, "read blob %s", b.d)
	}
	if err != nil {
		return nil, err
	}
	if got != b.d {
		return b.corrupt("content does not match the digest")
	}
	if !b.sumsOK || !slices.Equal(sums, b.sums) {
		b.s.log.Warn("blob is intact but its block checksums in the index were missing or wrong; recorded them", "digest", b.d)
		if err := b.s.ix.putChecksums(b.d.Hash(), sums); err != nil {
			return nil, status.Errorf(codes.Internal, "record block checksums of %s: %v", b.d, err)
		}
		b.sums, b.sumsOK = sums, true
	}
	return nil, nil
}

// Stream sends the bytes [offset, offset+limit) of the blob through send,
// at most one block (ChunkSize) at a time; limit 0 means to the end. Each
// block is read whole and checked against its checksum before any of it is
// sent, so a damaged block ends the stream with DataLoss (and the blob is
// quarantined) without one byte of it going out. The next block is read
// while the current one is being sent.
func (b *Blob) Stream(ctx context.Context, offset, limit int64, send func([]byte) error) error {
	end, err := RangeEnd(b.d, offset, limit)
	if err != nil || offset == end {
		return err
	}
	if err := b.ensureChecksums(ctx); err != nil {
		return err
	}
	const bs = blockSize
	first, last := offset/bs, (end-1)/bs
	buf, spare := getBuffer(), getBuffer()
	defer putBuffer(buf)
	defer putBuffer(spare)
	block, err := b.readBlock(ctx, *buf, first)
	for i := first; err == nil; i++ {
		// The part of block i inside the range.
		part := block[max(offset-i*bs, 0):min(end-i*bs, int64(len(block)))]
		if i == last {
			return send(part)
		}
		next := make(chan error, 1)
		var nextBlock []byte
		go func() {
			var err error
			nextBlock, err = b.readBlock(ctx, *spare, i+1)
			next <- err
		}()
		if err := send(part); err != nil {
			<-next
			return err
		}
		err = <-next
		block = nextBlock
		buf, spare = spare, buf
	}
	return err
}

// RangeEnd checks the range a read of blob d asks for, [offset,
// offset+limit) with limit 0 meaning to the end, and returns where it
// ends. Every backend takes ranges by these rules.
func RangeEnd(d digest.Digest, offset, limit int64) (int64, error) {
	size := d.Size()
	switch {
	case offset < 0:
		return 0, status.Errorf(codes.InvalidArgument, "negative offset %d", offset)
	case limit < 0:
		return 0, status.Errorf(codes.InvalidArgument, "negative limit %d", limit)
	case offset > size:
		return 0, status.Errorf(codes.OutOfRange, "offset %d is beyond the end of %s", offset, d)
	}
	if limit > 0 && limit < size-offset {
		return offset + limit, nil
	}
	return size, nil
}

// readBlock reads block i into buf and checks it against its checksum.
// On a mismatch the whole blob is re-hashed, since only that tells a
// rotten block (verify quarantines the blob) from a damaged checksum
// record (verify rewrites it, and the block is read again).
func (b *Blob) readBlock(ctx context.Context, buf []byte, i int64) ([]byte, error) {
	block, err := b.readChunk(buf, i*blockSize, min((i+1)*blockSize, b.d.Size()))
	if err != nil || crc32.Checksum(block, castagnoli) == b.sums[i] {
		return block, err
	}
	b.s.log.Warn("block does not match its checksum; re-hashing the whole blob", "digest", b.d, "block", i)
	if _, err := b.verify(ctx); err != nil {
		return nil, err
	}
	block, err = b.readChunk(buf, i*blockSize, min((i+1)*blockSize, b.d.Size()))
	if err != nil || crc32.Checksum(block, castagnoli) == b.sums[i] {
		return block, err
	}
	// The file is changing under the reader.
	_, err = b.corrupt(fmt.Sprintf("block %d does not match its checksum", i))
	return nil, err
}

// readChunk reads the next chunk of [pos, end) into buf and returns it,
// empty at the end. A file shorter than its digest says is corrupt.
func (b *Blob) readChunk(buf []byte, pos, end int64) ([]byte, error) {
	chunk := buf[:min(int64(len(buf)), end-pos)]
	if len(chunk) == 0 {
		return nil, nil
	}
	_, err := b.f.ReadAt(chunk, pos)
	if errors.Is(err, io.EOF) {
		_, err = b.corrupt("file is shorter than the digest says")
		return nil, err
	}
	if err != nil {
		return nil, ioStatus(err, "read blob %s", b.d)
	}
	return chunk, nil
}

// corrupt quarantines the blob and returns the DataLoss error for it.
func (b *Blob) corrupt(reason string) ([]digest.CacheKey, error) {
	dropped, err := b.s.quarantineOpened(b.d, b.f, reason)
	if err != nil {
		b.s.log.Error("quarantining corrupt blob failed", "digest", b.d, "error", err)
	}
	return dropped, status.Errorf(codes.DataLoss, "blob %s is corrupt (%s); it has been quarantined and the artifacts using it dropped, so they will be rebuilt", b.d, reason)
}
