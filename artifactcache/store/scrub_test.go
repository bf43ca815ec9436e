package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"distbuild/clock"
	"distbuild/digest"
)

func TestScrubQuarantinesCorruptBlobsAndDropsTheirManifests(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	good := put(t, s, []byte("good content"))
	bad := put(t, s, []byte("will rot"))
	if err := s.PutManifest(manifest(key(1), good, bad)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(manifest(key(2), good)); err != nil {
		t.Fatal(err)
	}
	corruptFile(t, s.dirs.blobPath(bad.Hash()), 0)

	report, err := s.Scrub(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if report.Checked != 2 || !slices.Equal(report.Corrupt, []digest.Digest{bad}) {
		t.Errorf("report %+v, want 2 checked and %s corrupt", report, bad)
	}
	if !slices.Equal(report.DroppedManifests, []digest.CacheKey{mustKey(t, key(1))}) {
		t.Errorf("dropped manifests %v, want only %s", report.DroppedManifests, key(1))
	}
	if has(s, bad) || hasManifest(s, key(1)) {
		t.Errorf("corrupt blob or its manifest still present after scrub")
	}
	if !has(s, good) || !hasManifest(s, key(2)) {
		t.Errorf("scrub removed a good blob or a manifest not using the corrupt one")
	}
	if _, err := readAll(s, bad); err == nil {
		t.Errorf("corrupt blob can still be read")
	}
	if q := dirEntries(t, s.dirs.quarantineDir()); len(q) != 1 {
		t.Errorf("quarantine holds %v, want the one corrupt file", q)
	}

	again, err := s.Scrub(context.Background())
	if err != nil || again.Checked != 1 || len(again.Corrupt) != 0 {
		t.Errorf("second scrub: %+v, %v; want 1 good blob checked", again, err)
	}
}

func TestScrubDoesNotCountAsUse(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	d := put(t, s, []byte("old"))
	lastAccess := func() int64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cat.blobs[d.Hash()].lastAccess
	}
	before := lastAccess()
	s.clock.(*clock.Fake).Advance(time.Second)
	if _, err := s.Scrub(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := lastAccess(); after != before {
		t.Errorf("scrub moved the last access time from %d to %d", before, after)
	}
}
