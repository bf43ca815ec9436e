package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"distbuild/digest"
	"distbuild/internal/atomicfile"
	pb "distbuild/proto/distbuild/v1"
)

// fakeBackend serves blobs from memory, as the trove's client would
// download them, and counts its downloads. Only downloads are used here.
type fakeBackend struct {
	Cache   // nil: manifests and uploads are not used by these tests
	content map[digest.Digest][]byte
	calls   int
	err     error
}

func (f *fakeBackend) blob(t *testing.T, s string) digest.Digest {
	t.Helper()
	d := digest.OfBytes([]byte(s))
	if f.content == nil {
		f.content = map[digest.Digest][]byte{}
	}
	f.content[d] = []byte(s)
	return d
}

func (f *fakeBackend) DownloadWithProgress(_ context.Context, d digest.Digest, path string, _ func()) error {
	f.calls++
	if f.err != nil {
		return f.err
	}
	return atomicfile.Write(path, f.content[d], 0o644)
}

// get downloads d through c into a file of the test's and returns its
// content.
func (f *fakeBackend) get(t *testing.T, c *Local, d digest.Digest) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blob")
	if err := c.DownloadWithProgress(context.Background(), d, path, nil); err != nil {
		t.Fatalf("download %s: %v", d, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func testLocal(t *testing.T, dir string, limit int64, backend *fakeBackend) *Local {
	t.Helper()
	c, err := NewLocal(dir, limit, backend, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func present(c *Local, d digest.Digest) bool {
	_, err := os.Stat(c.path(d.Hash()))
	return err == nil
}

func TestBlobCacheDownloadsOnceAndEvictsTheLeastRecentlyUsed(t *testing.T) {
	var dl fakeBackend
	c := testLocal(t, t.TempDir(), 1000, &dl)
	a, b, cc := dl.blob(t, string(bytes.Repeat([]byte("a"), 400))), dl.blob(t, string(bytes.Repeat([]byte("b"), 400))), dl.blob(t, string(bytes.Repeat([]byte("c"), 400)))
	dl.get(t, c, a)
	dl.get(t, c, b)
	if got := dl.get(t, c, a); !bytes.Equal(got, dl.content[a]) || dl.calls != 2 {
		t.Fatalf("second use of a: %d bytes, %d downloads in all; want its content and no new download", len(got), dl.calls)
	}
	dl.get(t, c, cc) // 1,200 bytes: over the limit
	if present(c, b) || !present(c, a) || !present(c, cc) {
		t.Errorf("after going over the limit: a %v, b %v, c %v; want b (least recently used) gone", present(c, a), present(c, b), present(c, cc))
	}
	if c.used != 800 {
		t.Errorf("used %d bytes, want 800", c.used)
	}
	if got := dl.get(t, c, b); !bytes.Equal(got, dl.content[b]) || dl.calls != 4 {
		t.Errorf("an evicted blob is downloaded again when needed: %d bytes, %d downloads", len(got), dl.calls)
	}
}

func TestBlobCacheEvictionLeavesOpenBlobsReadable(t *testing.T) {
	var dl fakeBackend
	c := testLocal(t, t.TempDir(), 500, &dl)
	a, b := dl.blob(t, string(bytes.Repeat([]byte("a"), 400))), dl.blob(t, string(bytes.Repeat([]byte("b"), 400)))
	path := filepath.Join(t.TempDir(), "a")
	if err := c.DownloadWithProgress(context.Background(), a, path, nil); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dl.get(t, c, b) // evicts a, which r still has open
	if present(c, a) {
		t.Fatal("a was not evicted")
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, dl.content[a]) {
		t.Errorf("a job unpacking a when it was evicted read %d bytes, %v", len(got), err)
	}
}

func TestBlobCacheKeepsItsOrderAcrossRestartsAndCleansUp(t *testing.T) {
	var dl fakeBackend
	dir := t.TempDir()
	c := testLocal(t, dir, 0, &dl)
	old, recent := dl.blob(t, "used long ago"), dl.blob(t, "used recently")
	dl.get(t, c, old)
	dl.get(t, c, recent)
	os.Chtimes(c.path(old.Hash()), time.Time{}, time.Now().Add(-time.Hour))
	if err := os.WriteFile(filepath.Join(dir, ".download-123"), []byte("half a blob"), 0o644); err != nil {
		t.Fatal(err)
	}

	c = testLocal(t, dir, 20, &dl) // room for one blob and its margin, not two
	if present(c, old) || !present(c, recent) {
		t.Errorf("after a restart with a smaller limit: old %v, recent %v; want only the recently used blob", present(c, old), present(c, recent))
	}
	if _, err := os.Stat(filepath.Join(dir, ".download-123")); !os.IsNotExist(err) {
		t.Errorf("a download a crash cut short survived the restart: %v", err)
	}
}

func TestBlobCacheKeepsNothingOfAFailedDownload(t *testing.T) {
	want := errors.New("the cache is down")
	c := testLocal(t, t.TempDir(), 0, &fakeBackend{err: want})
	d := digest.OfBytes([]byte("never arrives"))
	if err := c.DownloadWithProgress(context.Background(), d, filepath.Join(t.TempDir(), "blob"), nil); !errors.Is(err, want) {
		t.Fatalf("got %v, want the download's error", err)
	}
	if len(c.entries) != 0 || c.used != 0 {
		t.Errorf("a failed download left %d entries, %d bytes", len(c.entries), c.used)
	}
}

func TestBlobCacheDownloadsADamagedCopyAgain(t *testing.T) {
	var dl fakeBackend
	c := testLocal(t, t.TempDir(), 0, &dl)
	a := dl.blob(t, "the whole artifact")
	dl.get(t, c, a)
	if err := os.Truncate(c.path(a.Hash()), 3); err != nil {
		t.Fatal(err)
	}
	if got := dl.get(t, c, a); !bytes.Equal(got, dl.content[a]) || dl.calls != 2 {
		t.Errorf("a truncated copy: read %q after %d downloads; want the whole artifact, downloaded again", got, dl.calls)
	}
	if c.used != int64(len("the whole artifact")) {
		t.Errorf("used %d bytes, want one copy's", c.used)
	}
}

// Manifests and uploads are the wrapped cache's business.
type manifestBackend struct {
	fakeBackend
	put *pb.Manifest
}

func (m *manifestBackend) PutManifest(_ context.Context, man *pb.Manifest) error {
	m.put = man
	return nil
}

func TestBlobCachePassesManifestsThrough(t *testing.T) {
	backend := &manifestBackend{}
	c, err := NewLocal(t.TempDir(), 0, backend, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.Manifest{StepName: "x"}
	if err := c.PutManifest(context.Background(), m); err != nil || backend.put != m {
		t.Errorf("PutManifest through the local cache: %v, stored %v; want the wrapped cache to get it", err, backend.put)
	}
}
