package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"distbuild/clock"
	"distbuild/digest"

	"google.golang.org/protobuf/proto"
)

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	s := testStore(t, dir, 0, clk)
	d := put(t, s, []byte("kept"))
	m := manifest(key(1), d)
	if err := s.PutManifest(m); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = testStore(t, dir, 0, clk)
	got, err := readAll(s, d)
	if err != nil || string(got) != "kept" {
		t.Fatalf("after reopen read %q, %v; want %q", got, err, "kept")
	}
	gm, err := s.GetManifest(mustKey(t, key(1)))
	if err != nil || !proto.Equal(gm, m) {
		t.Fatalf("after reopen manifest %v, %v; want %v", gm, err, m)
	}
}

func TestSecondOpenOfADirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	testStore(t, dir, 0, clock.NewFake(epoch))
	if s, err := Open(Options{Dir: dir}); err == nil {
		s.Close()
		t.Fatal("a second store opened the same directory")
	}
}

func TestAccessTimesReachTheIndexOnlyWhenFlushed(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	s := testStore(t, dir, 0, clk)
	d := put(t, s, []byte("read me"))
	h := d.Hash()
	// Less than the flush interval, so the periodic flush stays away.
	clk.Advance(time.Second)
	if _, err := readAll(s, d); err != nil {
		t.Fatal(err)
	}
	indexed := func() int64 {
		c, err := s.ix.load()
		if err != nil {
			t.Fatal(err)
		}
		return c.blobAccess[h]
	}
	if got := indexed(); got != epoch.UnixNano() {
		t.Fatalf("index access time %d right after a read, want the upload time %d: reads must not write the index", got, epoch.UnixNano())
	}
	// The periodic flush writes it.
	clk.Advance(DefaultAccessFlushInterval)
	want := epoch.Add(time.Second).UnixNano()
	deadline := time.Now().Add(10 * time.Second)
	for indexed() != want {
		if time.Now().After(deadline) {
			t.Fatalf("index access time %d after the flush interval, want the read time %d", indexed(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEvictionOrderSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	s := testStore(t, dir, 200, clk)
	a := put(t, s, blob100('a'))
	clk.Advance(time.Minute)
	b := put(t, s, blob100('b'))
	clk.Advance(time.Minute)
	if _, err := readAll(s, a); err != nil { // a is now the most recent
		t.Fatal(err)
	}
	s.Close()

	s = testStore(t, dir, 200, clk)
	clk.Advance(time.Minute)
	put(t, s, blob100('c'))
	if !has(s, a) || has(s, b) {
		t.Errorf("after restart evicted the wrong blob: a present=%v, b present=%v; want a kept, b evicted", has(s, a), has(s, b))
	}
}

func TestOpenRepairsWhatACrashLeft(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	s := testStore(t, dir, 0, clk)
	kept := put(t, s, []byte("kept"))
	vanished := put(t, s, []byte("vanished"))
	shrunk := put(t, s, []byte("shrunk"))
	if err := s.PutManifest(manifest(key(1), vanished)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(manifest(key(2), kept)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// An unfinished upload, a blob renamed into place but never indexed,
	// a misnamed unindexed file, an indexed blob whose file is gone and
	// one whose file lost bytes.
	l := layout{root: dir}
	os.WriteFile(filepath.Join(l.tmpDir(), "upload-123"), []byte("partial"), 0o644)
	orphan := digest.OfBytes([]byte("orphan"))
	os.WriteFile(l.blobPath(orphan.Hash()), []byte("orphan"), 0o644)
	misnamed := digest.OfBytes([]byte("misnamed"))
	os.WriteFile(l.blobPath(misnamed.Hash()), []byte("other content"), 0o644)
	os.Remove(l.blobPath(vanished.Hash()))
	os.WriteFile(l.blobPath(shrunk.Hash()), []byte("shr"), 0o644)

	s = testStore(t, dir, 0, clk)
	if names := dirEntries(t, l.tmpDir()); len(names) != 0 {
		t.Errorf("temporary files survived open: %v", names)
	}
	if !has(s, orphan) {
		t.Errorf("unindexed blob with matching content was not adopted")
	}
	if got, err := readAll(s, orphan); err != nil || string(got) != "orphan" {
		t.Errorf("adopted blob reads %q, %v", got, err)
	}
	if has(s, misnamed) || has(s, vanished) || has(s, shrunk) {
		t.Errorf("a damaged or missing blob is still claimed")
	}
	if hasManifest(s, key(1)) {
		t.Errorf("manifest naming a vanished blob survived")
	}
	if !has(s, kept) || !hasManifest(s, key(2)) {
		t.Errorf("intact blob or manifest lost")
	}
	if q := dirEntries(t, l.quarantineDir()); len(q) != 2 {
		t.Errorf("quarantine holds %v, want the misnamed and the shrunk file", q)
	}
	if st := s.Stats(); st.Blobs != 2 || st.UsedBytes != int64(len("kept")+len("orphan")) {
		t.Errorf("stats %+v, want the kept and the orphan blob", st)
	}
}
