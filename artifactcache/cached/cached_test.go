package cached_test

import (
	"crypto/rand"
	"testing"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/backend/backendtest"
	"distbuild/artifactcache/cached"
	"distbuild/artifactcache/s3store"
	"distbuild/artifactcache/s3store/s3test"
	"distbuild/artifactcache/store"
	"distbuild/digest"
)

func newCached(t *testing.T, srv *s3test.Server, url string, maxSize int64) (*cached.Store, *store.Store) {
	t.Helper()
	remote, err := s3store.Open(t.Context(), s3store.Config{URL: url, Endpoint: srv.Endpoint, CredentialsFile: srv.CredentialsFile, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	local, err := store.Open(store.Options{Dir: t.TempDir(), MaxSizeBytes: maxSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	return cached.New(local, remote, nil), local
}

// TestConformance runs the backend suite against a local store in front
// of a real SeaweedFS.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, "")
	n := 0
	backendtest.Run(t, backendtest.Options{Open: func(t *testing.T) backend.Store {
		n++
		s, _ := newCached(t, srv, bucket+string(rune('a'+n))+"/", 1<<30)
		return s
	}})
}

// TestTrovesShareABucket uploads through one trove's cache and reads
// through another's: the second copies the blob into its own local store,
// which stays under its size limit by evicting what it read before; a blob
// larger than its whole local store is streamed from the bucket.
func TestTrovesShareABucket(t *testing.T) {
	srv := s3test.Start(t)
	url := srv.NewBucket(t, "site/")
	a, _ := newCached(t, srv, url, 1<<30)
	b, bLocal := newCached(t, srv, url, 12<<20)
	var blobs [][]byte
	for range 3 {
		content := make([]byte, 5<<20)
		rand.Read(content)
		blobs = append(blobs, content)
		d := digest.OfBytes(content)
		if err := backendtest.Put(t.Context(), a, d, content, 1<<20); err != nil {
			t.Fatal(err)
		}
		if missing, _, err := b.FindMissing(t.Context(), []digest.Digest{d}, nil); err != nil || len(missing) != 0 {
			t.Fatalf("the other trove: FindMissing = %v, %v", missing, err)
		}
		if _, ok := bLocal.Lookup(d.Hash()); ok {
			t.Fatal("the other trove has a local copy before reading it")
		}
		got, err := backendtest.ReadRange(t.Context(), b, d, 0, 0)
		if err != nil || digest.OfBytes(got) != d {
			t.Fatalf("reading through the other trove: %v", err)
		}
		if _, ok := bLocal.Lookup(d.Hash()); !ok {
			t.Fatal("reading did not leave a local copy")
		}
		if st := bLocal.Stats(); st.UsedBytes > 12<<20 {
			t.Fatalf("the local cache holds %d bytes, over its limit", st.UsedBytes)
		}
	}
	if bLocal.Stats().Evictions == 0 {
		t.Fatal("reading 15 MiB through a 12 MiB cache evicted nothing")
	}
	// The first blob was evicted; it is copied back on the next read.
	d0 := digest.OfBytes(blobs[0])
	if got, err := backendtest.ReadRange(t.Context(), b, d0, 1, 10); err != nil || string(got) != string(blobs[0][1:11]) {
		t.Fatalf("reading an evicted blob again: %v", err)
	}
	huge := make([]byte, 13<<20)
	rand.Read(huge)
	dh := digest.OfBytes(huge)
	if err := backendtest.Put(t.Context(), b, dh, huge, 1<<20); err != nil {
		t.Fatalf("uploading a blob larger than the local cache: %v", err)
	}
	if _, ok := bLocal.Lookup(dh.Hash()); ok {
		t.Fatal("a blob larger than the local cache was kept locally")
	}
	if got, err := backendtest.ReadRange(t.Context(), b, dh, 0, 0); err != nil || digest.OfBytes(got) != dh {
		t.Fatalf("reading a blob larger than the local cache: %v", err)
	}
}
