package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"distbuild/digest"

	"google.golang.org/grpc/status"
)

// blockSize is the unit in which stored blobs are checksummed and read: one
// streamed message, so a read checks exactly the block it is about to send.
const blockSize = ChunkSize

// castagnoli is CRC-32C, which the CPU computes at memory speed.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockChecksums are the CRC-32C of each block of a blob, taken from bytes
// whose SHA-256 had just been checked (on upload, adoption or scrub).
//
// They exist so that every read can check what it sends without re-hashing
// the whole blob: SHA-256 of every byte served costs as much CPU as the
// rest of a transfer, and a range read would have to hash bytes outside its
// range. A block whose checksum no longer matches has rotted on disk (or
// its record has); the read stops before sending any of it. SHA-256 stays
// the end-to-end check: clients hash what they download, and scrubs re-hash
// whole blobs.
type blockChecksums []uint32

// blockCount is how many blocks a blob of size bytes has.
func blockCount(size int64) int64 { return (size + blockSize - 1) / blockSize }

// encode packs the checksums for the index: the block size, so that a
// record stays unambiguous if the size ever changes, then each block's
// CRC, all big-endian uint32.
func (c blockChecksums) encode() []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+4*len(c)), blockSize)
	for _, s := range c {
		out = binary.BigEndian.AppendUint32(out, s)
	}
	return out
}

// decodeBlockChecksums reads an index record back, refusing one that does
// not fit a blob of size bytes or was made with another block size (the
// store then recomputes it).
func decodeBlockChecksums(v []byte, size int64) (blockChecksums, error) {
	if len(v) < 4 || len(v)%4 != 0 {
		return nil, fmt.Errorf("checksum record of %d bytes", len(v))
	}
	if bs := binary.BigEndian.Uint32(v); bs != blockSize {
		return nil, fmt.Errorf("checksum block size %d, want %d", bs, blockSize)
	}
	if n := blockCount(size); int64(len(v)/4-1) != n {
		return nil, fmt.Errorf("%d block checksums for %d blocks", len(v)/4-1, n)
	}
	c := make(blockChecksums, len(v)/4-1)
	for i := range c {
		c[i] = binary.BigEndian.Uint32(v[4+4*i:])
	}
	return c, nil
}

// checksummer computes blockChecksums of whatever is written to it, in
// pieces of any size.
type checksummer struct {
	sums   blockChecksums
	crc    uint32 // of the current, unfinished block
	filled int    // bytes of the current block seen so far
}

func (c *checksummer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(len(p), blockSize-c.filled)
		c.crc = crc32.Update(c.crc, castagnoli, p[:take])
		c.filled += take
		p = p[take:]
		if c.filled == blockSize {
			c.sums = append(c.sums, c.crc)
			c.crc, c.filled = 0, 0
		}
	}
	return n, nil
}

// checksums ends the last, partial block and returns the result.
func (c *checksummer) checksums() blockChecksums {
	if c.filled > 0 {
		return append(c.sums[:len(c.sums):len(c.sums)], c.crc)
	}
	return c.sums
}

// hashContent reads r to its end for the digest and the block checksums of
// what it holds, giving up when ctx ends: the one full read behind
// adopting a file, scrubbing a blob and repairing its checksums.
func hashContent(ctx context.Context, r io.Reader) (digest.Digest, blockChecksums, error) {
	h := digest.NewHasher()
	var c checksummer
	buf := getBuffer()
	defer putBuffer(buf)
	for {
		if err := ctx.Err(); err != nil {
			return digest.Digest{}, nil, status.FromContextError(err).Err()
		}
		n, err := io.ReadFull(r, *buf)
		h.Write((*buf)[:n])
		c.Write((*buf)[:n])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return h.Digest(), c.checksums(), nil
		}
		if err != nil {
			return digest.Digest{}, nil, err
		}
	}
}
