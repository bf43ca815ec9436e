package store

import (
	"fmt"
	"sync"
	"testing"

	"distbuild/clock"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestManifestRoundTrips(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	d := put(t, s, []byte("artifact"))
	m := manifest(key(1), d)
	if err := s.PutManifest(m); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetManifest(mustKey(t, key(1)))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, m) {
		t.Fatalf("got manifest %v, want %v", got, m)
	}
}

func TestManifestNamingMissingBlobsIsRefused(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	present := put(t, s, []byte("present"))
	absent := digest.OfBytes([]byte("absent"))
	wrongSize, _ := digest.New(present.Hash(), present.Size()+1)
	for name, d := range map[string]digest.Digest{"absent": absent, "wrong size": wrongSize} {
		err := s.PutManifest(manifest(key(1), present, d))
		wantCode(t, err, codes.FailedPrecondition)
		if hasManifest(s, key(1)) {
			t.Fatalf("%s: manifest stored although it names a blob the store lacks", name)
		}
	}
}

func TestFirstManifestUnderAKeyStays(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	first := manifest(key(1), put(t, s, []byte("first")))
	second := manifest(key(1), put(t, s, []byte("second")))
	if err := s.PutManifest(first); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(second); err != nil {
		t.Fatalf("second put for the same key: %v, want success", err)
	}
	got, err := s.GetManifest(mustKey(t, key(1)))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, first) {
		t.Fatalf("got %v, want the first manifest %v", got, first)
	}
}

func TestMalformedManifestsAreRefused(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	d := put(t, s, []byte("x"))
	dupNames := manifest(key(1), d, d)
	dupNames.Files[1].Name = dupNames.Files[0].Name
	noName := manifest(key(1), d)
	noName.Files[0].Name = ""
	badDigest := manifest(key(1), d)
	badDigest.Files[0].Digest = &distbuildv1.Digest{Hash: "ABC", SizeBytes: 1}
	noDigest := manifest(key(1), d)
	noDigest.Files[0].Digest = nil
	for name, m := range map[string]*distbuildv1.Manifest{
		"nil":                 nil,
		"path-like key":       manifest("../../etc/passwd", d),
		"upper-case key":      manifest("ABCDEF0000000000000000000000000000000000000000000000000000000000", d),
		"short key":           manifest("abc", d),
		"duplicate names":     dupNames,
		"file without name":   noName,
		"malformed digest":    badDigest,
		"file without digest": noDigest,
	} {
		wantCode(t, s.PutManifest(m), codes.InvalidArgument)
		if st := s.Stats(); st.Manifests != 0 {
			t.Fatalf("%s: a manifest was stored", name)
		}
	}
}

// granted gives m the controller's grant for an attempt with sequence seq.
func granted(m *distbuildv1.Manifest, job string, seq uint64) *distbuildv1.Manifest {
	m.Grant = &distbuildv1.AttemptGrant{JobId: job, CacheKey: m.CacheKey, Sequence: seq}
	return m
}

func TestOnlyTheLatestAttemptsManifestIsKept(t *testing.T) {
	s := testStore(t, t.TempDir(), 0, clock.NewFake(epoch))
	stale := granted(manifest(key(1), put(t, s, []byte("abandoned attempt"))), "job-1", 10)
	current := granted(manifest(key(1), put(t, s, []byte("current attempt"))), "job-2", 20)
	// The abandoned attempt's late result arrives first; the current one
	// replaces it.
	if err := s.PutManifest(stale); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(current); err != nil {
		t.Fatalf("the later attempt's manifest: %v", err)
	}
	got, err := s.GetManifest(mustKey(t, key(1)))
	if err != nil || !proto.Equal(got, current) {
		t.Fatalf("got %v (%v), want the later attempt's manifest", got, err)
	}
	// Arriving again after it, the abandoned attempt is refused.
	wantCode(t, s.PutManifest(stale), codes.FailedPrecondition)
	if got, _ := s.GetManifest(mustKey(t, key(1))); !proto.Equal(got, current) {
		t.Fatalf("the abandoned attempt overwrote the current one: %v", got)
	}
	// The same attempt again is accepted and changes nothing.
	if err := s.PutManifest(current); err != nil {
		t.Fatalf("repeating the current attempt: %v", err)
	}
	// The replaced manifest's blob is no longer held by any manifest.
	if users := s.cat.blobs[digest.OfBytes([]byte("abandoned attempt")).Hash()].users; users != 0 {
		t.Fatalf("the abandoned attempt's blob still has %d users", users)
	}
	if users := s.cat.blobs[digest.OfBytes([]byte("current attempt")).Hash()].users; users != 1 {
		t.Fatalf("the current attempt's blob has %d users, want 1", users)
	}
}

func TestConcurrentManifestsAreAllStoredAndTheLatestAttemptWins(t *testing.T) {
	dir := t.TempDir()
	s := testStore(t, dir, 0, clock.NewFake(epoch))
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		d := put(t, s, fmt.Appendf(nil, "artifact %d", i))
		wg.Go(func() { errs <- s.PutManifest(manifest(key(i+100), d)) })
	}
	// Attempts 1..n of one step race; only the highest may stay.
	attempts := make([]*distbuildv1.Manifest, n)
	for i := range n {
		attempts[i] = granted(manifest(key(1), put(t, s, fmt.Appendf(nil, "attempt %d", i))), fmt.Sprintf("job-%d", i), uint64(i+1))
	}
	for _, m := range attempts {
		wg.Go(func() {
			if err := s.PutManifest(m); err != nil && status.Code(err) != codes.FailedPrecondition {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store) {
		t.Helper()
		for i := range n {
			if _, err := s.GetManifest(mustKey(t, key(i+100))); err != nil {
				t.Fatalf("manifest %d: %v", i, err)
			}
		}
		if got, err := s.GetManifest(mustKey(t, key(1))); err != nil || got.GetGrant().GetSequence() != n {
			t.Fatalf("the racing attempts left %v (%v), want attempt %d", got.GetGrant(), err, n)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(testStore(t, dir, 0, clock.NewFake(epoch)))
}
