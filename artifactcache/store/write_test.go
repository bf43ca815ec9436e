package store

import (
	"bytes"
	"sync"
	"testing"

	"distbuild/clock"
	"distbuild/digest"

	"google.golang.org/grpc/codes"
)

func TestWriteThenStreamReturnsTheContent(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	content := bytes.Repeat([]byte("0123456789"), 300_000) // spans several chunks
	d := put(t, s, content)
	got, err := readAll(s, d)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("streamed %d bytes differing from the %d written", len(got), len(content))
	}
	if st := s.Stats(); st.Blobs != 1 || st.UsedBytes != int64(len(content)) {
		t.Fatalf("stats %+v, want 1 blob of %d bytes", st, len(content))
	}
}

func TestAsyncWritesLendTheirPiecesUntilHashedAndWritten(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	content := bytes.Repeat([]byte("abcdefghij"), 250_000)
	d := digest.OfBytes(content)
	w, err := s.NewBlobWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// Each piece is its own copy, spoiled as soon as it is given back: a
	// piece given back before the writer is done with it spoils the blob.
	var mu sync.Mutex
	lent := 0
	for rest := content; len(rest) > 0; {
		piece := bytes.Clone(rest[:min(len(rest), 100_000)])
		rest = rest[len(piece):]
		mu.Lock()
		lent++
		mu.Unlock()
		err := w.WriteAsync(piece, func() {
			clear(piece)
			mu.Lock()
			lent--
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if lent != 0 {
		t.Errorf("%d pieces never given back", lent)
	}
	if got, err := readAll(s, d); err != nil || !bytes.Equal(got, content) {
		t.Errorf("stored blob reads %d bytes, %v", len(got), err)
	}
}

func TestEmptyBlobRoundTrips(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	d := put(t, s, nil)
	got, err := readAll(s, d)
	if err != nil || len(got) != 0 {
		t.Fatalf("stream of empty blob: %q, %v; want nothing and no error", got, err)
	}
}

func TestRefusedUploadsKeepNothing(t *testing.T) {
	content := []byte("the real content")
	other := digest.OfBytes([]byte("something else!!")) // same length, other hash
	for _, tc := range []struct {
		name     string
		declared digest.Digest
		send     []byte
		failAt   string // "write" or "commit"
	}{
		{"wrong hash", other, content, "commit"},
		{"short", digest.OfBytes(content), content[:5], "commit"},
		{"too long", digest.OfBytes(content[:5]), content, "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := testStore(t, dir, 1000, clock.NewFake(epoch))
			w, err := s.NewBlobWriter(tc.declared)
			if err != nil {
				t.Fatal(err)
			}
			err = w.WriteAsync(tc.send, nil)
			if tc.failAt == "write" {
				wantCode(t, err, codes.InvalidArgument)
				// A writer that refused content must not commit what it has.
				wantCode(t, w.Commit(), codes.InvalidArgument)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				wantCode(t, w.Commit(), codes.InvalidArgument)
			}
			if has(s, tc.declared) {
				t.Errorf("store claims to hold %s after a refused upload", tc.declared)
			}
			if st := s.Stats(); st.Blobs != 0 || st.UsedBytes != 0 {
				t.Errorf("stats %+v after refused upload, want empty", st)
			}
			if names := dirEntries(t, s.dirs.tmpDir()); len(names) != 0 {
				t.Errorf("temporary files left behind: %v", names)
			}
			if names := dirEntries(t, s.dirs.shardDir(tc.declared.Hash())); len(names) != 0 {
				t.Errorf("blob files left behind: %v", names)
			}
			if s.cat.reserved != 0 {
				t.Errorf("reserved space %d not returned", s.cat.reserved)
			}
		})
	}
}

func TestConcurrentUploadsOfOneBlobStoreOneCopy(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	content := bytes.Repeat([]byte("same"), 10_000)
	d := digest.OfBytes(content)
	const writers = 8
	// All writers finish writing before any commits, so every one of them
	// races to commit a complete, correct upload.
	ws := make([]*BlobWriter, writers)
	for i := range ws {
		w, err := s.NewBlobWriter(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteAsync(content, nil); err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i, w := range ws {
		wg.Go(func() { errs[i] = w.Commit() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v; want success", i, err)
		}
	}
	if names := dirEntries(t, s.dirs.shardDir(d.Hash())); len(names) != 1 {
		t.Errorf("blob shard holds %v, want exactly one file", names)
	}
	if names := dirEntries(t, s.dirs.tmpDir()); len(names) != 0 {
		t.Errorf("temporary files left behind: %v", names)
	}
	if st := s.Stats(); st.Blobs != 1 || st.UsedBytes != d.Size() {
		t.Errorf("stats %+v, want one blob of %d bytes", st, d.Size())
	}
}

func TestBlobLargerThanTheCacheIsRefusedUpFront(t *testing.T) {
	s := testStore(t, t.TempDir(), 100, clock.NewFake(epoch))
	d, _ := digest.New(digest.Hash{1}, 101)
	_, err := s.NewBlobWriter(d)
	wantCode(t, err, codes.ResourceExhausted)
	if s.cat.reserved != 0 {
		t.Errorf("reserved %d bytes for a refused upload", s.cat.reserved)
	}
}

func TestAnUploadMayDeclareItsHashAfterItsContent(t *testing.T) {
	content := []byte("the real content")
	d := digest.OfBytes(content)
	for _, tc := range []struct {
		name     string
		declared digest.Digest // at the end
		want     codes.Code    // of CommitAs; OK stores d
	}{
		{"matching", d, codes.OK},
		{"another hash", digest.OfBytes([]byte("something else!!")), codes.InvalidArgument},
		{"another size", digest.OfBytes(content[:5]), codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testStore(t, t.TempDir(), 1000, clock.NewFake(epoch))
			w, err := s.NewBlobWriterOfSize(d.Size())
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if err := w.WriteAsync(content, nil); err != nil {
				t.Fatal(err)
			}
			wantCode(t, w.CommitAs(tc.declared), tc.want)
			if stored := has(s, d); stored != (tc.want == codes.OK) {
				t.Errorf("blob stored: %v", stored)
			}
			if names := dirEntries(t, s.dirs.tmpDir()); len(names) != 0 {
				t.Errorf("temporary files left behind: %v", names)
			}
			if s.cat.reserved != 0 {
				t.Errorf("reserved space %d not returned", s.cat.reserved)
			}
		})
	}
	s := testStore(t, t.TempDir(), 1000, clock.NewFake(epoch))
	w, err := s.NewBlobWriterOfSize(d.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	wantCode(t, w.Commit(), codes.FailedPrecondition)
	if _, err := s.NewBlobWriterOfSize(-1); err == nil {
		t.Error("an upload of a negative size was started")
	}
	if _, err := s.NewBlobWriterOfSize(1001); err == nil {
		t.Error("an upload larger than the cache was started")
	}
}
