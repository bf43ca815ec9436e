package store

import (
	"bytes"
	"testing"
	"time"

	"distbuild/clock"
	"distbuild/digest"

	"google.golang.org/grpc/codes"
)

// blob100 makes distinct 100-byte blobs.
func blob100(c byte) []byte { return bytes.Repeat([]byte{c}, 100) }

func TestEvictionRemovesLeastRecentlyUsedWholeArtifacts(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := testStore(t, t.TempDir(), 400, clk)

	// Artifact A: blobs a1, a2 and shared; artifact B: b1 and shared.
	shared := put(t, s, blob100('s'))
	a1, a2 := put(t, s, blob100('1')), put(t, s, blob100('2'))
	if err := s.PutManifest(manifest(key(0xA), a1, a2, shared)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	b1 := put(t, s, blob100('b'))
	if err := s.PutManifest(manifest(key(0xB), b1, shared)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	// Reading one file of A makes the whole of A recently used, so B is
	// now the least recently used artifact.
	if _, err := readAll(s, a2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)

	// The store is full (400 of 400). A new 100-byte blob needs B gone:
	// its manifest and b1, but not the shared blob A still uses.
	c := put(t, s, blob100('c'))
	if hasManifest(s, key(0xB)) || has(s, b1) {
		t.Errorf("artifact B (least recently used) survived eviction")
	}
	for name, d := range map[string]digest.Digest{"a1": a1, "a2": a2, "shared": shared, "c": c} {
		if !has(s, d) {
			t.Errorf("blob %s was evicted; only artifact B should have been", name)
		}
	}
	if !hasManifest(s, key(0xA)) {
		t.Errorf("manifest A was evicted; only artifact B should have been")
	}

	// Next, c (a lone blob, but the newest) stays while A (older) goes,
	// and with it the shared blob, which nothing else uses any more.
	clk.Advance(time.Minute)
	put(t, s, bytes.Repeat([]byte{'d'}, 300))
	if hasManifest(s, key(0xA)) || has(s, a1) || has(s, a2) || has(s, shared) {
		t.Errorf("artifact A and its blobs should all have been evicted")
	}
	if !has(s, c) {
		t.Errorf("blob c, more recent than artifact A, was evicted")
	}
	if st := s.Stats(); st.UsedBytes != 400 {
		t.Errorf("store uses %d bytes, want exactly its limit of 400", st.UsedBytes)
	}
}

func TestEvictionLeavesPinnedBlobsAlone(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := testStore(t, t.TempDir(), 200, clk)
	old := put(t, s, blob100('o'))
	clk.Advance(time.Minute)
	newer := put(t, s, blob100('n'))
	clk.Advance(time.Minute)

	// A reader holds the oldest blob open.
	b, err := s.openBlob(old, false)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, blob100('x'))
	if !has(s, old) {
		t.Fatalf("pinned blob was evicted under its reader")
	}
	if has(s, newer) {
		t.Fatalf("the unpinned blob should have been evicted instead")
	}
	// With everything else pinned or too new to fit around, an upload
	// that needs the pinned blob's room is refused.
	x, _ := s.Lookup(digest.OfBytes(blob100('x')).Hash())
	bx, err := s.openBlob(x, false)
	if err != nil {
		t.Fatal(err)
	}
	wy, err := s.NewBlobWriter(digest.OfBytes(blob100('y')))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, wy.WriteAsync(blob100('y'), nil), codes.ResourceExhausted)
	wy.Abort()

	// Once closed, the blob can be evicted again.
	b.Close()
	bx.Close()
	put(t, s, blob100('y'))
	if has(s, old) {
		t.Errorf("blob still present after it was unpinned and space was needed")
	}
}

func TestUploadsReserveRoomOnlyForWhatHasArrived(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := testStore(t, t.TempDir(), 300, clk)
	old := put(t, s, blob100('o'))
	clk.Advance(time.Minute)
	newer := put(t, s, blob100('n'))
	clk.Advance(time.Minute)

	// An upload declaring the whole cache evicts nothing when it starts,
	// nor for its first bytes, which fit in the free room.
	whole, _ := digest.New(digest.Hash{7}, 300)
	w1, err := s.NewBlobWriter(whole)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Abort()
	if err := w1.WriteAsync(bytes.Repeat([]byte{'w'}, 100), nil); err != nil {
		t.Fatal(err)
	}
	if !has(s, old) || !has(s, newer) {
		t.Fatalf("an upload evicted blobs for room its content did not need yet")
	}
	if st := s.Stats(); st.ReservedBytes != 100 {
		t.Errorf("reserved %d bytes after 100 arrived, want 100", st.ReservedBytes)
	}
	// Its next bytes evict just enough: the least recently used blob.
	if err := w1.WriteAsync(bytes.Repeat([]byte{'w'}, 50), nil); err != nil {
		t.Fatal(err)
	}
	if has(s, old) || !has(s, newer) {
		t.Errorf("150 bytes arrived: want only the oldest blob evicted (old present: %v, newer present: %v)", has(s, old), has(s, newer))
	}

	// A second upload counts the first one's reservation, so it must
	// evict the other stored blob rather than overshoot the limit.
	w2, err := s.NewBlobWriter(digest.OfBytes(blob100('2')))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Abort()
	if err := w2.WriteAsync(blob100('2'), nil); err != nil {
		t.Fatal(err)
	}
	if has(s, newer) {
		t.Errorf("second upload should have evicted the stored blob")
	}
	// With nothing left to evict, a third upload's content is refused.
	w3, err := s.NewBlobWriter(digest.OfBytes(blob100('3')))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, w3.WriteAsync(blob100('3'), nil), codes.ResourceExhausted)
	w3.Abort()
	if st := s.Stats(); st.ReservedBytes != 250 || st.UsedBytes != 0 {
		t.Errorf("stats %+v, want 250 bytes reserved by the first two uploads and none used", st)
	}
	// An abandoned upload gives its room back.
	w1.Abort()
	if st := s.Stats(); st.ReservedBytes != 100 {
		t.Errorf("reserved %d bytes after the first upload was abandoned, want 100", st.ReservedBytes)
	}
}

func TestEvictionSkipsWhatWasUsedAfterItWasListed(t *testing.T) {
	clk := clock.NewFake(epoch)
	s := testStore(t, t.TempDir(), 300, clk)
	a := put(t, s, blob100('a'))
	clk.Advance(time.Minute)
	b := put(t, s, blob100('b'))
	clk.Advance(time.Minute)
	c := put(t, s, blob100('c'))
	clk.Advance(time.Minute)

	// The first eviction lists a, b and c, oldest first, and takes a.
	put(t, s, blob100('1'))
	if has(s, a) || !has(s, b) || !has(s, c) {
		t.Fatalf("want only the oldest blob evicted")
	}
	// b is read after the listing, so c is now the least recently used;
	// the next eviction must take c, not b as listed.
	clk.Advance(time.Minute)
	if _, err := readAll(s, b); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	put(t, s, blob100('2'))
	if !has(s, b) || has(s, c) {
		t.Errorf("after b was read, want c evicted and b kept (b present: %v, c present: %v)", has(s, b), has(s, c))
	}
}
