package step

import (
	"fmt"
	"os"
	"strings"

	"distbuild/internal/bytesize"
)

// cappedLog is a step's stored log. Up to its limit it keeps everything;
// beyond it, the first half of the limit and the last half, with a line
// between them saying how many bytes were cut there, so a command that
// prints without end cannot fill the worker's disk or the cache, yet the
// end of the output, where a failure shows, is kept, and no cut is silent.
//
// The first half goes to the file as it arrives; the last half is held in
// a ring buffer (allocated only when the first half is full) and written
// out by Close. It is not safe for concurrent use.
type cappedLog struct {
	f     *os.File
	limit int64 // 0: no limit
	head  int64 // bytes written straight to f
	total int64 // bytes given to Write
	tail  ring
	// headEndsLine says whether the head ends at the end of a line, so
	// that a marker after it starts on a line of its own.
	headEndsLine bool
}

func newCappedLog(f *os.File, limit int64) *cappedLog {
	return &cappedLog{f: f, limit: limit, headEndsLine: true}
}

func (l *cappedLog) Write(p []byte) (int, error) {
	n := len(p)
	l.total += int64(n)
	headCap := l.limit / 2
	if l.limit <= 0 {
		headCap = l.total
	}
	if room := headCap - l.head; room > 0 {
		k := min(room, int64(len(p)))
		written, err := l.f.Write(p[:k])
		l.head += int64(written)
		if written > 0 {
			l.headEndsLine = p[written-1] == '\n'
		}
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	if len(p) > 0 {
		if l.tail.buf == nil {
			l.tail.buf = make([]byte, 0, l.limit-headCap)
		}
		l.tail.write(p)
	}
	return n, nil
}

// Close writes out the kept tail, after the marker if anything was cut,
// syncs and closes the file, and returns how many bytes the file holds.
func (l *cappedLog) Close() (int64, error) {
	size := l.head
	write := func(p []byte) error {
		n, err := l.f.Write(p)
		size += int64(n)
		return err
	}
	first, second := l.tail.parts()
	var err error
	if omitted := l.total - l.head - int64(len(first)+len(second)); omitted > 0 {
		err = write([]byte(cutMarker(omitted, l.limit, l.headEndsLine)))
	}
	for _, p := range [][]byte{first, second} {
		if err == nil {
			err = write(p)
		}
	}
	if err == nil {
		err = l.f.Sync()
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return size, err
}

// cutMarker is the line that stands where a log was cut, on a line of its
// own.
func cutMarker(omitted, limit int64, atLineStart bool) string {
	size := bytesize.Size(limit).String()
	if strings.IndexFunc(size, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		size += " bytes"
	}
	m := fmt.Sprintf("[distbuild: %d bytes of output omitted here; log limit %s]\n", omitted, size)
	if !atLineStart {
		m = "\n" + m
	}
	return m
}

// ring keeps the last cap(buf) bytes written to it.
type ring struct {
	buf  []byte
	next int // where the oldest byte is, once buf is full
}

func (r *ring) write(p []byte) {
	if room := cap(r.buf) - len(r.buf); room > 0 {
		k := min(room, len(p))
		r.buf = append(r.buf, p[:k]...)
		p = p[k:]
	}
	if len(p) > len(r.buf) {
		p = p[len(p)-len(r.buf):]
	}
	for len(p) > 0 {
		k := copy(r.buf[r.next:], p)
		p = p[k:]
		r.next = (r.next + k) % len(r.buf)
	}
}

// parts returns the kept bytes, oldest first, in two pieces.
func (r *ring) parts() ([]byte, []byte) {
	return r.buf[r.next:], r.buf[:r.next]
}
