package step

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeCapped writes data to a cappedLog in writes of the given sizes
// (cycling) and returns what the file holds and the size Close reported.
func writeCapped(t *testing.T, limit int64, data []byte, sizes []int) ([]byte, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := newCappedLog(f, limit)
	for i, rest := 0, data; len(rest) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(rest))
		if k, err := l.Write(rest[:n]); k != n || err != nil {
			t.Fatalf("Write: %d, %v; want %d, nil", k, err, n)
		}
		rest = rest[n:]
	}
	size, err := l.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return got, size
}

func TestCappedLogKeepsHeadMarkerAndTail(t *testing.T) {
	var lines bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	data := lines.Bytes() // 8890 bytes
	for _, c := range []struct {
		name  string
		limit int64
		sizes []int
		want  string
	}{
		{"no limit", 0, []int{100}, string(data)},
		{"under the limit", 10000, []int{7, 1, 300}, string(data)},
		{"exactly the limit", int64(len(data)), []int{4096}, string(data)},
		{"one byte over", int64(len(data)) - 1, []int{1000},
			string(data[:4444]) + "[distbuild: 1 bytes of output omitted here; log limit 8889 bytes]\n" + string(data[4445:])},
		{"cut at a line end", 2048, []int{3, 5000},
			string(data[:1024]) + "[distbuild: 6842 bytes of output omitted here; log limit 2KiB]\n" + string(data[len(data)-1024:])},
		{"cut inside a line", 2050, []int{3, 5000},
			string(data[:1025]) + "\n[distbuild: 6840 bytes of output omitted here; log limit 2050 bytes]\n" + string(data[len(data)-1025:])},
		{"one write larger than everything", 2048, []int{1 << 20},
			string(data[:1024]) + "[distbuild: 6842 bytes of output omitted here; log limit 2KiB]\n" + string(data[len(data)-1024:])},
		{"byte by byte", 14, []int{1},
			"line 0\n" + "[distbuild: 8876 bytes of output omitted here; log limit 14 bytes]\n" + "ne 999\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, size := writeCapped(t, c.limit, data, c.sizes)
			if string(got) != c.want {
				t.Errorf("log holds\n%.300q...\nwant\n%.300q...", got, c.want)
			}
			if size != int64(len(got)) {
				t.Errorf("Close reported %d bytes; the file holds %d", size, len(got))
			}
		})
	}
}

func TestCappedLogMarkerNamesTheLimit(t *testing.T) {
	got := cutMarker(5, 64<<20, true)
	if want := "[distbuild: 5 bytes of output omitted here; log limit 64MiB]\n"; got != want {
		t.Errorf("marker %q; want %q", got, want)
	}
}

func TestCappedLogReportsAFullDisk(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := newCappedLog(f, 1<<20)
	if _, err := l.Write([]byte("output\n")); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Write to a full disk: %v; want ENOSPC", err)
	}
	if size, _ := l.Close(); size != 0 {
		t.Errorf("Close says the log holds %d bytes; nothing could be written", size)
	}
}

func TestRingKeepsTheLastBytes(t *testing.T) {
	r := ring{buf: make([]byte, 0, 5)}
	var all strings.Builder
	for _, s := range []string{"ab", "cdef", "g", "hijklmnop", "q"} {
		r.write([]byte(s))
		all.WriteString(s)
		a, b := r.parts()
		kept := all.String()[max(0, all.Len()-5):]
		if got := string(a) + string(b); got != kept {
			t.Errorf("after writing %q the ring holds %q; want %q", all.String(), got, kept)
		}
	}
}
