package s3store_test

import (
	"context"
	"crypto/rand"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/backend/backendtest"
	"distbuild/artifactcache/s3store"
	"distbuild/artifactcache/s3store/s3test"
	"distbuild/digest"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func open(t *testing.T, srv *s3test.Server, url string) *s3store.Store {
	t.Helper()
	s, err := s3store.Open(t.Context(), s3store.Config{URL: url, Endpoint: srv.Endpoint, CredentialsFile: srv.CredentialsFile, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the backend suite against a real SeaweedFS, each
// test under a prefix of its own in one bucket; the large blob spans four
// 5 MiB parts.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, "")
	n := 0
	backendtest.Run(t, backendtest.Options{Open: func(t *testing.T) backend.Store {
		n++
		return open(t, srv, bucket+"test"+strings.Repeat("x", n))
	}})
	// Uploads whose digest came at their end left no temporary object.
	name := strings.TrimSuffix(strings.TrimPrefix(bucket, "s3://"), "/")
	for obj := range srv.Client.ListObjects(t.Context(), name, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.Contains(obj.Key, "/uploads/") {
			t.Errorf("temporary upload object %s was left behind", obj.Key)
		}
	}
}

func TestBadConfigurationIsRefusedClearly(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, "p")
	badCreds := filepath.Join(t.TempDir(), "creds")
	os.WriteFile(badCreds, []byte("[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n"), 0o600)
	noSecret := filepath.Join(t.TempDir(), "creds")
	os.WriteFile(noSecret, []byte("[default]\naws_access_key_id = x\n"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  s3store.Config
		want string
	}{
		{"not s3", s3store.Config{URL: "http://bucket/p", Endpoint: srv.Endpoint, CredentialsFile: srv.CredentialsFile}, "want s3://BUCKET"},
		{"no bucket", s3store.Config{URL: "s3:///p", Endpoint: srv.Endpoint, CredentialsFile: srv.CredentialsFile}, "want s3://BUCKET"},
		{"bad endpoint", s3store.Config{URL: bucket, Endpoint: "127.0.0.1:1", CredentialsFile: srv.CredentialsFile}, "want http://HOST:PORT"},
		{"no credentials", s3store.Config{URL: bucket, Endpoint: srv.Endpoint}, "needs a credentials file"},
		{"missing credentials file", s3store.Config{URL: bucket, Endpoint: srv.Endpoint, CredentialsFile: "/nonexistent"}, "no such file"},
		{"credentials without secret", s3store.Config{URL: bucket, Endpoint: srv.Endpoint, CredentialsFile: noSecret}, "aws_secret_access_key"},
		{"wrong credentials", s3store.Config{URL: bucket, Endpoint: srv.Endpoint, CredentialsFile: badCreds}, "checking the bucket"},
		{"absent bucket", s3store.Config{URL: "s3://no-such-bucket-here/p", Endpoint: srv.Endpoint, CredentialsFile: srv.CredentialsFile}, "does not exist"},
		{"tiny parts", s3store.Config{URL: bucket, Endpoint: srv.Endpoint, CredentialsFile: srv.CredentialsFile, PartSize: 1 << 20}, "minimum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s3store.Open(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestStoreKilledMidUploadLeavesNoPartialObject kills SeaweedFS while a
// multipart upload has parts in the store, restarts it, and checks that
// the blob is not visible (no object, FindMissing says missing), that no
// manifest can name it, and that uploading it again works.
func TestStoreKilledMidUploadLeavesNoPartialObject(t *testing.T) {
	srv := s3test.Start(t)
	url := srv.NewBucket(t, "kill/")
	s := open(t, srv, url)
	content := make([]byte, 24<<20)
	rand.Read(content)
	d := digest.OfBytes(content)
	w, err := s.NewBlobWriter(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	// Three whole 5 MiB parts go to the store.
	for off := 0; off < 16<<20; off += 1 << 20 {
		wg.Add(1)
		if err := w.WriteAsync(content[off:off+1<<20], wg.Done); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the store has parts of the upload, then kill it.
	bucket := strings.TrimPrefix(strings.TrimSuffix(url, "kill/"), "s3://")
	bucket = strings.TrimSuffix(bucket, "/")
	core := minio.Core{Client: srv.Client}
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := core.ListMultipartUploads(t.Context(), bucket, "kill/", "", "", "", 10)
		if err == nil && len(res.Uploads) == 1 {
			parts, err := core.ListObjectParts(t.Context(), bucket, res.Uploads[0].Key, res.Uploads[0].UploadID, 0, 10)
			if err == nil && len(parts.ObjectParts) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload's parts never reached the store")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Kill()
	for off := 16 << 20; off < len(content); off += 1 << 20 {
		wg.Add(1)
		if err := w.WriteAsync(content[off:off+1<<20], wg.Done); err != nil {
			wg.Done()
			break // the sender has already failed
		}
	}
	err = w.Commit()
	wg.Wait()
	if err == nil {
		t.Fatal("Commit succeeded with the store dead")
	}
	t.Logf("Commit with the store killed: %v", err)
	srv.Restart()
	missing, _, err := s.FindMissing(t.Context(), []digest.Digest{d}, nil)
	if err != nil || len(missing) != 1 {
		t.Fatalf("after the restart FindMissing = %v, %v; want the blob missing", missing, err)
	}
	if _, err := s.OpenBlob(t.Context(), d); status.Code(err) != codes.NotFound {
		t.Fatalf("OpenBlob of the half-uploaded blob = %v, want NotFound", err)
	}
	for obj := range srv.Client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "kill/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		t.Errorf("object %s (%d bytes) is visible after the interrupted upload", obj.Key, obj.Size)
	}
	key, _ := digest.ParseCacheKey(d.Hash().String())
	if err := s.PutManifest(t.Context(), backendtest.Manifest(key, 0, d)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a manifest naming the lost blob: %v, want FailedPrecondition", err)
	}
	if err := backendtest.Put(t.Context(), s, d, content, 1<<20); err != nil {
		t.Fatalf("uploading again after the restart: %v", err)
	}
	got, err := backendtest.ReadRange(t.Context(), s, d, 0, 0)
	if err != nil || digest.OfBytes(got) != d {
		t.Fatalf("reading back: %v", err)
	}
}

// TestManifestWhoseBlobVanishedIsAbsent deletes a blob behind the store's
// back (as a lifecycle rule might): the manifest naming it is then absent,
// so the step is rebuilt instead of failing to fetch.
func TestManifestWhoseBlobVanishedIsAbsent(t *testing.T) {
	srv := s3test.Start(t)
	url := srv.NewBucket(t, "")
	s := open(t, srv, url)
	content := []byte("a blob that will vanish")
	d := digest.OfBytes(content)
	if err := backendtest.Put(t.Context(), s, d, content, 10); err != nil {
		t.Fatal(err)
	}
	key, _ := digest.ParseCacheKey(d.Hash().String())
	if err := s.PutManifest(t.Context(), backendtest.Manifest(key, 0, d)); err != nil {
		t.Fatal(err)
	}
	bucket := strings.TrimSuffix(strings.TrimPrefix(url, "s3://"), "/")
	if err := srv.Client.RemoveObject(t.Context(), bucket, "blobs/sha256/"+d.Hash().String(), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(t.Context(), key); status.Code(err) != codes.NotFound {
		t.Fatalf("GetManifest = %v, want NotFound", err)
	}
	if _, missing, err := s.FindMissing(t.Context(), nil, []digest.CacheKey{key}); err != nil || len(missing) != 1 {
		t.Fatalf("FindMissing = %v, %v; want the key missing", missing, err)
	}
}

// TestUploadMemoryIsBounded uploads 128 MiB in 1 MiB pieces from one
// reused buffer and samples the heap meanwhile: the writer must hold a few
// parts (four of 5 MiB here; the heap also holds what the collector has
// not yet freed), never the blob.
func TestUploadMemoryIsBounded(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.NewBucket(t, "mem/"))
	const size, piece = 128 << 20, 1 << 20
	fill := func(gen *mrand.ChaCha8, buf []byte) { gen.Read(buf) }
	h := digest.NewHasher()
	buf := make([]byte, piece)
	gen := mrand.NewChaCha8([32]byte{1})
	for range size / piece {
		fill(gen, buf)
		h.Write(buf)
	}
	d := h.Digest()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	w, err := s.NewBlobWriter(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	gen = mrand.NewChaCha8([32]byte{1})
	for range size / piece {
		fill(gen, buf)
		done := make(chan struct{})
		if err := w.WriteAsync(buf, func() { close(done) }); err != nil {
			t.Fatal(err)
		}
		<-done // buf is reused
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sampled
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap in use grew by at most %d MiB while uploading %d MiB", grew>>20, size>>20)
	if grew > 64<<20 {
		t.Fatalf("heap in use grew by %d MiB while uploading %d MiB: the upload is not streamed in bounded memory", grew>>20, size>>20)
	}
	if missing, _, err := s.FindMissing(t.Context(), []digest.Digest{d}, nil); err != nil || len(missing) != 0 {
		t.Fatalf("the uploaded blob: FindMissing = %v, %v", missing, err)
	}
}
