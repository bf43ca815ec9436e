package statedb

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's on-disk header, as go.etcd.io/bbolt/internal/common lays it out:
// every page starts with a 16-byte header, and the two meta pages (pages 0
// and 1) follow it with magic, version, page size, flags, root bucket (16
// bytes), freelist page, high-water page, txid and an FNV-64a checksum of
// everything before it. bbolt writes them in the machine's byte order.
const (
	pageHeaderSize = 16
	metaSize       = 64
	metaChecksumAt = 56 // the checksum covers meta[:56]
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
)

// metaPage is what one of the two meta pages says.
type metaPage struct {
	problem  string // empty when the page is valid
	pageSize uint32
	pages    uint64 // the high-water mark: pages in use, free ones included
	txid     uint64
}

// parseMeta validates one meta page's body the way bbolt does.
func parseMeta(b []byte) metaPage {
	if len(b) < metaSize {
		return metaPage{problem: "missing (the file is too short)"}
	}
	order := binary.NativeEndian
	m := metaPage{pageSize: order.Uint32(b[8:]), pages: order.Uint64(b[40:]), txid: order.Uint64(b[48:])}
	h := fnv.New64a()
	h.Write(b[:metaChecksumAt])
	switch {
	case order.Uint32(b[0:]) != boltMagic:
		m.problem = "not a bbolt meta page (wrong magic number)"
	case order.Uint32(b[4:]) != boltVersion:
		m.problem = fmt.Sprintf("unknown format version %d", order.Uint32(b[4:]))
	case order.Uint64(b[metaChecksumAt:]) != h.Sum64():
		m.problem = "checksum mismatch"
	}
	return m
}

// readMetas reads both meta pages of a bbolt file. Page 1 sits one page
// size in, so when page 0 is unreadable the candidate sizes bbolt itself
// tries are searched for a valid page 1.
func readMetas(f io.ReaderAt) [2]metaPage {
	read := func(off int64) metaPage {
		b := make([]byte, metaSize)
		if _, err := f.ReadAt(b, off+pageHeaderSize); err != nil {
			return metaPage{problem: "missing (the file is too short)"}
		}
		return parseMeta(b)
	}
	metas := [2]metaPage{read(0)}
	if metas[0].problem == "" {
		metas[1] = read(int64(metas[0].pageSize))
		return metas
	}
	metas[1] = metaPage{problem: "not found at any page size"}
	for size := int64(1024); size <= 1024<<14; size *= 2 {
		if m := read(size); m.problem == "" {
			metas[1] = m
			break
		}
	}
	return metas
}

// checkMetas says what is wrong with a database's header, or "" when both
// meta pages are valid and the file holds every page the newer one counts.
//
// bbolt keeps two meta pages and commits by overwriting the older one, so
// both are valid after every commit. When one is invalid bbolt opens the
// database silently as of the other, an older transaction: whatever the
// damaged page had committed is rolled back without a word. A torn write
// of the 64-byte meta body is not a plausible cause (it lies in the first
// sector of its page, and disks write sectors whole), so an invalid meta
// page means damage, and the controller refuses to open the database
// rather than carry on from an older state it would never mention.
// `controller state repair` then chooses, and says, what is kept.
//
// A file shorter than its pages (torn by a copy, or truncated) must be
// caught here: bbolt maps the file into memory and reads pages without
// bounds checks, and a page beyond the end of the file is a SIGBUS, which
// no recover catches.
func checkMetas(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	m := readMetas(f)
	switch {
	case m[0].problem != "" && m[1].problem != "":
		return fmt.Sprintf("neither meta page is valid (page 0: %s; page 1: %s): the file is not a bbolt database or its header is destroyed", m[0].problem, m[1].problem), nil
	case m[0].problem != "" || m[1].problem != "":
		bad, good := 0, 1
		if m[0].problem == "" {
			bad, good = 1, 0
		}
		return fmt.Sprintf("meta page %d is damaged (%s); bbolt would silently open the database as of transaction %d from meta page %d, dropping whatever the damaged page had committed",
			bad, m[bad].problem, m[good].txid, good), nil
	}
	newer := m[max(m[0].txid, m[1].txid)%2]
	if need := newer.pages * uint64(newer.pageSize); uint64(fi.Size()) < need {
		return fmt.Sprintf("the file is cut short: it has %d bytes, but its transaction %d uses %d pages of %d bytes (%d bytes)",
			fi.Size(), newer.txid, newer.pages, newer.pageSize, need), nil
	}
	return "", nil
}
