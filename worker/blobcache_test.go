package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"distbuild/digest"

	"github.com/hashicorp/go-hclog"
)

// fakeDownload writes content to the path it is given, as the cache client
// would, and counts its calls.
type fakeDownload struct {
	content map[digest.Digest][]byte
	calls   int
}

func (f *fakeDownload) blob(t *testing.T, s string) digest.Digest {
	t.Helper()
	d := digest.OfBytes([]byte(s))
	if f.content == nil {
		f.content = map[digest.Digest][]byte{}
	}
	f.content[d] = []byte(s)
	return d
}

func (f *fakeDownload) open(t *testing.T, c *blobCache, d digest.Digest) []byte {
	t.Helper()
	r, err := c.open(context.Background(), d, func(_ context.Context, path string) error {
		f.calls++
		return os.WriteFile(path, f.content[d], 0o644)
	})
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func testBlobCache(t *testing.T, dir string, limit int64) *blobCache {
	t.Helper()
	c, err := openBlobCache(dir, limit, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func present(c *blobCache, d digest.Digest) bool {
	_, err := os.Stat(c.path(d.Hash()))
	return err == nil
}

func TestBlobCacheDownloadsOnceAndEvictsTheLeastRecentlyUsed(t *testing.T) {
	var dl fakeDownload
	c := testBlobCache(t, t.TempDir(), 1000)
	a, b, cc := dl.blob(t, string(bytes.Repeat([]byte("a"), 400))), dl.blob(t, string(bytes.Repeat([]byte("b"), 400))), dl.blob(t, string(bytes.Repeat([]byte("c"), 400)))
	dl.open(t, c, a)
	dl.open(t, c, b)
	if got := dl.open(t, c, a); !bytes.Equal(got, dl.content[a]) || dl.calls != 2 {
		t.Fatalf("second use of a: %d bytes, %d downloads in all; want its content and no new download", len(got), dl.calls)
	}
	dl.open(t, c, cc) // 1,200 bytes: over the limit
	if present(c, b) || !present(c, a) || !present(c, cc) {
		t.Errorf("after going over the limit: a %v, b %v, c %v; want b (least recently used) gone", present(c, a), present(c, b), present(c, cc))
	}
	if c.used != 800 {
		t.Errorf("used %d bytes, want 800", c.used)
	}
	if got := dl.open(t, c, b); !bytes.Equal(got, dl.content[b]) || dl.calls != 4 {
		t.Errorf("an evicted blob is downloaded again when needed: %d bytes, %d downloads", len(got), dl.calls)
	}
}

func TestBlobCacheEvictionLeavesOpenBlobsReadable(t *testing.T) {
	var dl fakeDownload
	c := testBlobCache(t, t.TempDir(), 500)
	a, b := dl.blob(t, string(bytes.Repeat([]byte("a"), 400))), dl.blob(t, string(bytes.Repeat([]byte("b"), 400)))
	r, err := c.open(context.Background(), a, func(_ context.Context, path string) error {
		return os.WriteFile(path, dl.content[a], 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dl.open(t, c, b) // evicts a, which r still has open
	if present(c, a) {
		t.Fatal("a was not evicted")
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, dl.content[a]) {
		t.Errorf("a job unpacking a when it was evicted read %d bytes, %v", len(got), err)
	}
}

func TestBlobCacheKeepsItsOrderAcrossRestartsAndCleansUp(t *testing.T) {
	var dl fakeDownload
	dir := t.TempDir()
	c := testBlobCache(t, dir, 0)
	old, recent := dl.blob(t, "used long ago"), dl.blob(t, "used recently")
	dl.open(t, c, old)
	dl.open(t, c, recent)
	os.Chtimes(c.path(old.Hash()), time.Time{}, time.Now().Add(-time.Hour))
	if err := os.WriteFile(filepath.Join(dir, ".download-123"), []byte("half a blob"), 0o644); err != nil {
		t.Fatal(err)
	}

	c = testBlobCache(t, dir, 20) // room for one blob and its margin, not two
	if present(c, old) || !present(c, recent) {
		t.Errorf("after a restart with a smaller limit: old %v, recent %v; want only the recently used blob", present(c, old), present(c, recent))
	}
	if _, err := os.Stat(filepath.Join(dir, ".download-123")); !os.IsNotExist(err) {
		t.Errorf("a download a crash cut short survived the restart: %v", err)
	}
}

func TestBlobCacheKeepsNothingOfAFailedDownload(t *testing.T) {
	c := testBlobCache(t, t.TempDir(), 0)
	d := digest.OfBytes([]byte("never arrives"))
	want := errors.New("the cache is down")
	if _, err := c.open(context.Background(), d, func(context.Context, string) error { return want }); !errors.Is(err, want) {
		t.Fatalf("got %v, want the download's error", err)
	}
	if len(c.entries) != 0 || c.used != 0 {
		t.Errorf("a failed download left %d entries, %d bytes", len(c.entries), c.used)
	}
}

func TestBlobCacheDownloadsADamagedCopyAgain(t *testing.T) {
	var dl fakeDownload
	c := testBlobCache(t, t.TempDir(), 0)
	a := dl.blob(t, "the whole artifact")
	dl.open(t, c, a)
	if err := os.Truncate(c.path(a.Hash()), 3); err != nil {
		t.Fatal(err)
	}
	if got := dl.open(t, c, a); !bytes.Equal(got, dl.content[a]) || dl.calls != 2 {
		t.Errorf("a truncated copy: read %q after %d downloads; want the whole artifact, downloaded again", got, dl.calls)
	}
	if c.used != int64(len("the whole artifact")) {
		t.Errorf("used %d bytes, want one copy's", c.used)
	}
}
