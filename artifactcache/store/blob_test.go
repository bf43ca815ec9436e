package store

import (
	"bytes"
	"context"
	"os"
	"testing"

	"distbuild/clock"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStreamOfARange(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	content := make([]byte, 3*ChunkSize+10)
	for i := range content {
		content[i] = byte(i * 7)
	}
	d := put(t, s, content)
	b, err := s.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	size := int64(len(content))
	for _, r := range []struct{ offset, limit, wantEnd int64 }{
		{0, 0, size},
		{5, 10, 15},
		{ChunkSize - 1, ChunkSize + 2, 2*ChunkSize + 1},
		{size - 3, 0, size},
		{size - 3, 100, size},
		{size, 0, size},
	} {
		var got bytes.Buffer
		err := b.Stream(context.Background(), r.offset, r.limit, func(p []byte) error { got.Write(p); return nil })
		if err != nil {
			t.Fatalf("range offset=%d limit=%d: %v", r.offset, r.limit, err)
		}
		if !bytes.Equal(got.Bytes(), content[r.offset:r.wantEnd]) {
			t.Fatalf("range offset=%d limit=%d: got %d bytes, want content[%d:%d]", r.offset, r.limit, got.Len(), r.offset, r.wantEnd)
		}
	}
	for _, r := range []struct {
		offset, limit int64
		want          codes.Code
	}{
		{-1, 0, codes.InvalidArgument},
		{0, -1, codes.InvalidArgument},
		{size + 1, 0, codes.OutOfRange},
	} {
		err := b.Stream(context.Background(), r.offset, r.limit, func([]byte) error { return nil })
		wantCode(t, err, r.want)
	}
}

// corruptFile flips a byte of a stored blob behind the store's back.
func corruptFile(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestStreamStopsBeforeTheFirstDamagedBlock(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	content := bytes.Repeat([]byte("z"), 2*ChunkSize+5)
	d := put(t, s, content)
	if err := s.PutManifest(manifest(key(1), d)); err != nil {
		t.Fatal(err)
	}
	corruptFile(t, s.dirs.blobPath(d.Hash()), ChunkSize+1) // in the second block

	got, err := readAll(s, d)
	wantCode(t, err, codes.DataLoss)
	if !bytes.Equal(got, content[:ChunkSize]) {
		t.Errorf("sent %d bytes of a blob damaged at byte %d; want exactly the intact first block (%d bytes)", len(got), ChunkSize+1, ChunkSize)
	}
	if has(s, d) || hasManifest(s, key(1)) {
		t.Errorf("corrupt blob or the manifest naming it is still served")
	}
	if _, err := s.OpenBlob(d); status.Code(err) != codes.NotFound {
		t.Errorf("open after quarantine: %v, want NotFound", err)
	}
	if q := dirEntries(t, s.dirs.quarantineDir()); len(q) != 1 {
		t.Errorf("quarantine holds %v, want the one corrupt file", q)
	}
}

func TestRangeStreamChecksTheWholeBlocksItTouches(t *testing.T) {
	content := bytes.Repeat([]byte("r"), 2*ChunkSize)
	for _, c := range []struct {
		name     string
		damageAt int64
		want     codes.Code
	}{
		{"damage in the range's block but outside the range", 999, codes.DataLoss},
		{"damage in a block the range does not touch", ChunkSize + 10, codes.OK},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
			d := put(t, s, content)
			corruptFile(t, s.dirs.blobPath(d.Hash()), c.damageAt)
			b, err := s.OpenBlob(d)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var sent int
			err = b.Stream(context.Background(), 10, 20, func(p []byte) error { sent += len(p); return nil })
			wantCode(t, err, c.want)
			if c.want == codes.OK && sent != 20 {
				t.Errorf("sent %d bytes of an intact range, want 20", sent)
			}
			if c.want != codes.OK && sent != 0 {
				t.Errorf("sent %d bytes from a damaged block", sent)
			}
		})
	}
}

func TestCheckBlocksFindsDamageAnywhere(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	d := put(t, s, bytes.Repeat([]byte("c"), 2*ChunkSize+1))
	b, err := s.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.CheckBlocks(context.Background()); err != nil {
		t.Fatalf("intact blob: %v", err)
	}
	corruptFile(t, s.dirs.blobPath(d.Hash()), 2*ChunkSize) // the last byte, alone in its block
	wantCode(t, b.CheckBlocks(context.Background()), codes.DataLoss)
	if has(s, d) {
		t.Errorf("damaged blob still served")
	}
}

func TestTruncatedBlobIsCorrupt(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	d := put(t, s, bytes.Repeat([]byte("t"), 100))
	if err := os.Truncate(s.dirs.blobPath(d.Hash()), 50); err != nil {
		t.Fatal(err)
	}
	_, err := readAll(s, d)
	wantCode(t, err, codes.DataLoss)
	if has(s, d) {
		t.Errorf("truncated blob still served")
	}
}

func TestBlobWhoseFileVanishedIsForgotten(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	d := put(t, s, []byte("gone"))
	if err := s.PutManifest(manifest(key(1), d)); err != nil {
		t.Fatal(err)
	}
	os.Remove(s.dirs.blobPath(d.Hash()))
	_, err := s.OpenBlob(d)
	wantCode(t, err, codes.NotFound)
	if has(s, d) || hasManifest(s, key(1)) {
		t.Errorf("blob or manifest still claimed after the file vanished")
	}
}
