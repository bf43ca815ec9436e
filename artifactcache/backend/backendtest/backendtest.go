// Package backendtest is the conformance suite of backend.Store: the same
// tests run against every implementation (the local store, the S3 store on
// a real SeaweedFS, the read-through cache in front of it), so that the
// service behaves the same whichever one a trove is given.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"

	"distbuild/artifactcache/backend"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Options describes the implementation under test.
type Options struct {
	// Open returns an empty store for one test.
	Open func(t *testing.T) backend.Store
	// LargeSize is the size of the blob that must cross the
	// implementation's internal boundaries (S3 parts, local blocks);
	// 0 means 20 MiB.
	LargeSize int
}

// Run runs the whole suite, each test as a subtest with a store of its
// own.
func Run(t *testing.T, opts Options) {
	if opts.LargeSize == 0 {
		opts.LargeSize = 20 << 20
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s backend.Store, opts Options)
	}{
		{"BlobRoundTrip", testBlobRoundTrip},
		{"EmptyBlob", testEmptyBlob},
		{"LargeBlobAcrossParts", testLargeBlob},
		{"Ranges", testRanges},
		{"WrongContentStoresNothing", testWrongContent},
		{"ShortContentStoresNothing", testShortContent},
		{"ExcessContentRefused", testExcessContent},
		{"AbortStoresNothing", testAbort},
		{"DuplicateUploadsKeepOneBlob", testDuplicateUploads},
		{"ManifestNeedsItsBlobs", testManifestNeedsBlobs},
		{"ManifestAttempts", testManifestAttempts},
		{"FindMissingKeepsOrder", testFindMissingOrder},
		{"DigestDeclaredAtTheEnd", testHashLater},
		{"DigestDeclaredAtTheEndMustMatch", testHashLaterMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, opts.Open(t), opts)
		})
	}
}

// random returns n random bytes, so that tests sharing a bucket never
// collide.
func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// Put stores content in pieces of at most chunk bytes through a
// BlobWriter, as the service does, and returns Commit's error.
func Put(ctx context.Context, s backend.Store, d digest.Digest, content []byte, chunk int) error {
	w, err := s.NewBlobWriter(ctx, d)
	if err != nil {
		return err
	}
	return write(w, content, chunk, w.Commit)
}

// PutHashingLater stores content as a client that hashes while sending
// does: the size first, the digest after the content.
func PutHashingLater(ctx context.Context, s backend.Store, d digest.Digest, content []byte, chunk int) error {
	w, err := s.NewBlobWriterOfSize(ctx, int64(len(content)))
	if err != nil {
		return err
	}
	return write(w, content, chunk, func() error { return w.CommitAs(d) })
}

// write hands content to w in pieces and completes it with commit, once
// w has released every piece.
func write(w backend.BlobWriter, content []byte, chunk int, commit func() error) error {
	defer w.Abort()
	var wg sync.WaitGroup
	for off := 0; off < len(content); off += chunk {
		wg.Add(1)
		if err := w.WriteAsync(content[off:min(off+chunk, len(content))], wg.Done); err != nil {
			wg.Done()
			return err
		}
	}
	err := commit()
	wg.Wait()
	return err
}

func mustPut(t *testing.T, s backend.Store, content []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(content)
	if err := Put(t.Context(), s, d, content, 1<<20); err != nil {
		t.Fatalf("put %s: %v", d, err)
	}
	return d
}

// ReadRange reads [offset, offset+limit) of a blob.
func ReadRange(ctx context.Context, s backend.Store, d digest.Digest, offset, limit int64) ([]byte, error) {
	b, err := s.OpenBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var buf bytes.Buffer
	err = b.Stream(ctx, offset, limit, func(p []byte) error {
		buf.Write(p)
		return nil
	})
	return buf.Bytes(), err
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("got %v, want code %v", err, want)
	}
}

func isMissing(t *testing.T, s backend.Store, d digest.Digest) bool {
	t.Helper()
	missing, _, err := s.FindMissing(t.Context(), []digest.Digest{d}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(missing) == 1
}

func checkRead(t *testing.T, s backend.Store, d digest.Digest, want []byte) {
	t.Helper()
	got, err := ReadRange(t.Context(), s, d, 0, 0)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s: got %d bytes that differ from the %d stored", d, len(got), len(want))
	}
}

func testBlobRoundTrip(t *testing.T, s backend.Store, _ Options) {
	content := random(t, 3<<20+17)
	d := digest.OfBytes(content)
	if !isMissing(t, s, d) {
		t.Fatal("an empty store says it holds a blob")
	}
	_, err := s.OpenBlob(t.Context(), d)
	wantCode(t, err, codes.NotFound)
	_, err = s.Lookup(t.Context(), d.Hash())
	wantCode(t, err, codes.NotFound)
	mustPut(t, s, content)
	if isMissing(t, s, d) {
		t.Fatal("a stored blob is reported missing")
	}
	checkRead(t, s, d, content)
	got, err := s.Lookup(t.Context(), d.Hash())
	if err != nil || got != d {
		t.Fatalf("Lookup(%s) = %v, %v; want %v", d.Hash(), got, err, d)
	}
}

func testEmptyBlob(t *testing.T, s backend.Store, _ Options) {
	d := mustPut(t, s, nil)
	if isMissing(t, s, d) {
		t.Fatal("the stored empty blob is reported missing")
	}
	checkRead(t, s, d, nil)
}

func testLargeBlob(t *testing.T, s backend.Store, opts Options) {
	content := random(t, opts.LargeSize)
	d := digest.OfBytes(content)
	// Odd-sized pieces, so that no boundary of the writer lines up with
	// one of the sender's.
	if err := Put(t.Context(), s, d, content, 1<<20-3); err != nil {
		t.Fatal(err)
	}
	checkRead(t, s, d, content)
}

func testRanges(t *testing.T, s backend.Store, _ Options) {
	content := random(t, 5<<20+123)
	d := mustPut(t, s, content)
	size := int64(len(content))
	for _, r := range []struct{ off, limit int64 }{
		{0, 1}, {1, 0}, {size - 1, 0}, {1 << 20, 1 << 20}, {size - 10, 100}, {12345, 3 << 20}, {size, 0},
	} {
		got, err := ReadRange(t.Context(), s, d, r.off, r.limit)
		if err != nil {
			t.Fatalf("range %d+%d: %v", r.off, r.limit, err)
		}
		end := size
		if r.limit > 0 {
			end = min(r.off+r.limit, size)
		}
		if !bytes.Equal(got, content[r.off:end]) {
			t.Fatalf("range %d+%d: got %d bytes, not the %d expected", r.off, r.limit, len(got), end-r.off)
		}
	}
	_, err := ReadRange(t.Context(), s, d, size+1, 0)
	wantCode(t, err, codes.OutOfRange)
	_, err = ReadRange(t.Context(), s, d, -1, 0)
	wantCode(t, err, codes.InvalidArgument)
	_, err = ReadRange(t.Context(), s, d, 0, -1)
	wantCode(t, err, codes.InvalidArgument)
}

func testWrongContent(t *testing.T, s backend.Store, _ Options) {
	content := random(t, 2<<20)
	d := digest.OfBytes(content)
	bad := bytes.Clone(content)
	bad[len(bad)/2] ^= 1
	wantCode(t, Put(t.Context(), s, d, bad, 1<<20), codes.InvalidArgument)
	if !isMissing(t, s, d) {
		t.Fatal("content that did not match its digest was stored")
	}
	_, err := s.OpenBlob(t.Context(), d)
	wantCode(t, err, codes.NotFound)
}

func testShortContent(t *testing.T, s backend.Store, _ Options) {
	content := random(t, 1<<20)
	d := digest.OfBytes(content)
	wantCode(t, Put(t.Context(), s, d, content[:len(content)-1], 1<<16), codes.InvalidArgument)
	if !isMissing(t, s, d) {
		t.Fatal("a truncated upload was stored")
	}
}

func testExcessContent(t *testing.T, s backend.Store, _ Options) {
	content := random(t, 1000)
	d := digest.OfBytes(content[:999])
	wantCode(t, Put(t.Context(), s, d, content, 1000), codes.InvalidArgument)
	if !isMissing(t, s, d) {
		t.Fatal("an oversized upload was stored")
	}
}

func testAbort(t *testing.T, s backend.Store, _ Options) {
	content := random(t, 9<<20)
	d := digest.OfBytes(content)
	w, err := s.NewBlobWriter(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for off := 0; off < 7<<20; off += 1 << 20 {
		wg.Add(1)
		if err := w.WriteAsync(content[off:off+1<<20], wg.Done); err != nil {
			t.Fatal(err)
		}
	}
	w.Abort()
	wg.Wait()
	if !isMissing(t, s, d) {
		t.Fatal("an aborted upload was stored")
	}
	w.Abort() // twice is fine
	// The same blob can still be uploaded afterwards.
	mustPut(t, s, content)
	checkRead(t, s, d, content)
}

func testDuplicateUploads(t *testing.T, s backend.Store, _ Options) {
	content := random(t, 2<<20)
	d := digest.OfBytes(content)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = Put(t.Context(), s, d, content, 1<<18) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent upload %d: %v", i, err)
		}
	}
	if err := Put(t.Context(), s, d, content, 1<<20); err != nil {
		t.Fatalf("uploading a present blob again: %v", err)
	}
	checkRead(t, s, d, content)
}

// Manifest returns a manifest of the given files, named f0, f1, ...
func Manifest(key digest.CacheKey, seq uint64, files ...digest.Digest) *distbuildv1.Manifest {
	m := &distbuildv1.Manifest{CacheKey: key.String(), StepName: "step", Worker: "w1"}
	for i, d := range files {
		m.Files = append(m.Files, &distbuildv1.ManifestFile{Name: fmt.Sprintf("f%d", i), Digest: d.Proto()})
	}
	if seq > 0 {
		m.Grant = &distbuildv1.AttemptGrant{Sequence: seq, JobId: fmt.Sprintf("job-%d", seq)}
	}
	return m
}

func randomKey(t *testing.T) digest.CacheKey {
	k, err := digest.ParseCacheKey(digest.OfBytes(random(t, 32)).Hash().String())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testManifestNeedsBlobs(t *testing.T, s backend.Store, _ Options) {
	a, b := random(t, 1000), random(t, 70000)
	da, db := digest.OfBytes(a), digest.OfBytes(b)
	key := randomKey(t)
	_, err := s.GetManifest(t.Context(), key)
	wantCode(t, err, codes.NotFound)
	mustPut(t, s, a)
	m := Manifest(key, 0, da, db)
	wantCode(t, s.PutManifest(t.Context(), m), codes.FailedPrecondition)
	if _, missing, err := s.FindMissing(t.Context(), nil, []digest.CacheKey{key}); err != nil || len(missing) != 1 {
		t.Fatalf("a refused manifest: FindMissing = %v, %v", missing, err)
	}
	mustPut(t, s, b)
	if err := s.PutManifest(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetManifest(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, m) {
		t.Fatalf("GetManifest = %v, want %v", got, m)
	}
	if _, missing, err := s.FindMissing(t.Context(), nil, []digest.CacheKey{key}); err != nil || len(missing) != 0 {
		t.Fatalf("a stored manifest: FindMissing = %v, %v", missing, err)
	}
	// Malformed manifests are refused before anything is stored.
	bad := Manifest(randomKey(t), 0, da, da)
	bad.Files[1].Name = bad.Files[0].Name
	wantCode(t, s.PutManifest(t.Context(), bad), codes.InvalidArgument)
	bad = Manifest(key, 0, da)
	bad.CacheKey = "not-a-key"
	wantCode(t, s.PutManifest(t.Context(), bad), codes.InvalidArgument)
}

func testManifestAttempts(t *testing.T, s backend.Store, _ Options) {
	a, b, c := mustPut(t, s, random(t, 10)), mustPut(t, s, random(t, 20)), mustPut(t, s, random(t, 30))
	key := randomKey(t)
	first := Manifest(key, 2, a)
	if err := s.PutManifest(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	// The same attempt again keeps the first.
	if err := s.PutManifest(t.Context(), Manifest(key, 2, b)); err != nil {
		t.Fatalf("the same attempt again: %v", err)
	}
	wantManifest(t, s, key, first)
	// An earlier, abandoned attempt is refused.
	wantCode(t, s.PutManifest(t.Context(), Manifest(key, 1, b)), codes.FailedPrecondition)
	wantManifest(t, s, key, first)
	// A later attempt replaces it.
	later := Manifest(key, 3, c)
	if err := s.PutManifest(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	wantManifest(t, s, key, later)
}

func wantManifest(t *testing.T, s backend.Store, key digest.CacheKey, want *distbuildv1.Manifest) {
	t.Helper()
	got, err := s.GetManifest(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("manifest %s: got job %s, want job %s", key, got.GetGrant().GetJobId(), want.GetGrant().GetJobId())
	}
}

func testFindMissingOrder(t *testing.T, s backend.Store, _ Options) {
	var blobs []digest.Digest
	var want []digest.Digest
	for i := range 20 {
		content := random(t, 100+i)
		d := digest.OfBytes(content)
		if i%3 == 0 {
			mustPut(t, s, content)
		} else {
			want = append(want, d)
		}
		blobs = append(blobs, d)
	}
	present := mustPut(t, s, random(t, 5))
	stored := randomKey(t)
	if err := s.PutManifest(t.Context(), Manifest(stored, 0, present)); err != nil {
		t.Fatal(err)
	}
	keys := []digest.CacheKey{randomKey(t), stored, randomKey(t)}
	missing, missingKeys, err := s.FindMissing(t.Context(), blobs, keys)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(missing) != fmt.Sprint(want) {
		t.Fatalf("missing blobs = %v, want %v", missing, want)
	}
	if len(missingKeys) != 2 || missingKeys[0] != keys[0] || missingKeys[1] != keys[2] {
		t.Fatalf("missing keys = %v, want %v and %v", missingKeys, keys[0], keys[2])
	}
}

func testHashLater(t *testing.T, s backend.Store, opts Options) {
	for _, size := range []int{0, 1000, opts.LargeSize} {
		content := random(t, size)
		d := digest.OfBytes(content)
		if err := PutHashingLater(t.Context(), s, d, content, 1<<20-3); err != nil {
			t.Fatalf("%d bytes, digest at the end: %v", size, err)
		}
		checkRead(t, s, d, content)
		// Again, now that the store holds it: no second copy, no error.
		if err := PutHashingLater(t.Context(), s, d, content, 1<<20); err != nil {
			t.Fatalf("%d bytes again, digest at the end: %v", size, err)
		}
		checkRead(t, s, d, content)
	}
	// Each kind of writer is completed only its own way.
	content := random(t, 100)
	d := digest.OfBytes(content)
	w, err := s.NewBlobWriterOfSize(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAsync(content, nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, w.Commit(), codes.FailedPrecondition)
	w.Abort()
	w, err = s.NewBlobWriter(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, w.CommitAs(d), codes.FailedPrecondition)
	w.Abort()
	if !isMissing(t, s, d) {
		t.Fatal("a writer completed the wrong way stored its blob")
	}
}

func testHashLaterMismatch(t *testing.T, s backend.Store, opts Options) {
	for _, size := range []int{1000, opts.LargeSize} {
		content := random(t, size)
		other := digest.OfBytes(random(t, size))
		wantCode(t, PutHashingLater(t.Context(), s, other, content, 1<<20), codes.InvalidArgument)
		if !isMissing(t, s, other) || !isMissing(t, s, digest.OfBytes(content)) {
			t.Fatal("content declared under another digest was stored")
		}
		longer := digest.OfBytes(append(content, 0))
		wantCode(t, PutHashingLater(t.Context(), s, longer, content, 1<<20), codes.InvalidArgument)
		if !isMissing(t, s, longer) {
			t.Fatal("a digest of another size was stored")
		}
	}
}
