package store

import (
	"testing"

	"distbuild/artifactcache/clock"
	"distbuild/artifactcache/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
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
