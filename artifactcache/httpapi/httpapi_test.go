package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/store"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

type fixture struct {
	dir   string
	store *store.Store
	url   string
}

func serve(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	logger := hclog.New(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Debug})
	st, err := store.Open(store.Options{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(backend.Local(st), logger))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return &fixture{dir: dir, store: st, url: srv.URL}
}

func (f *fixture) put(t *testing.T, content []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(content)
	w, err := f.store.NewBlobWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAsync(content, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return d
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (f *fixture) get(t *testing.T, method, path string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}

func TestBlobDownload(t *testing.T) {
	f := serve(t)
	content := []byte("0123456789abcdefghij")
	d := f.put(t, content)
	path := "/blobs/sha256/" + d.Hash().String()
	etag := `"sha256:` + d.Hash().String() + `"`

	r := f.get(t, "GET", path, nil)
	if r.code != 200 || r.body != string(content) || r.header.Get("Content-Length") != "20" || r.header.Get("ETag") != etag {
		t.Errorf("GET: %d %q length=%q etag=%q; want 200, the content, length 20, etag %s", r.code, r.body, r.header.Get("Content-Length"), r.header.Get("ETag"), etag)
	}
	r = f.get(t, "GET", path, map[string]string{"Range": "bytes=5-9"})
	if r.code != 206 || r.body != "56789" || r.header.Get("Content-Range") != "bytes 5-9/20" || r.header.Get("Content-Length") != "5" {
		t.Errorf("range GET: %d %q range=%q; want 206 %q, bytes 5-9/20", r.code, r.body, r.header.Get("Content-Range"), "56789")
	}
	r = f.get(t, "GET", path, map[string]string{"Range": "bytes=-3"})
	if r.code != 206 || r.body != "hij" {
		t.Errorf("suffix range GET: %d %q; want 206 %q", r.code, r.body, "hij")
	}
	r = f.get(t, "GET", path, map[string]string{"Range": "bytes=30-40"})
	if r.code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range beyond the end: %d, want 416", r.code)
	}
	r = f.get(t, "GET", path, map[string]string{"If-None-Match": etag})
	if r.code != http.StatusNotModified || r.body != "" {
		t.Errorf("conditional GET with matching ETag: %d %q, want 304 and no body", r.code, r.body)
	}
	r = f.get(t, "HEAD", path, nil)
	if r.code != 200 || r.body != "" || r.header.Get("Content-Length") != "20" {
		t.Errorf("HEAD: %d %q length=%q; want 200, no body, length 20", r.code, r.body, r.header.Get("Content-Length"))
	}
}

func TestManifestAsJSON(t *testing.T) {
	f := serve(t)
	d := f.put(t, []byte("artifact"))
	key := strings.Repeat("ab", 32)
	m := &distbuildv1.Manifest{CacheKey: key, StepName: "zlib", Kind: distbuildv1.StepKind_STEP_KIND_CHUNK,
		Files: []*distbuildv1.ManifestFile{{Name: "zlib-devel", Role: distbuildv1.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}}}
	if err := f.store.PutManifest(m); err != nil {
		t.Fatal(err)
	}
	r := f.get(t, "GET", "/artifacts/"+key, nil)
	if r.code != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET manifest: %d type=%q, want 200 application/json", r.code, r.header.Get("Content-Type"))
	}
	got := &distbuildv1.Manifest{}
	if err := protojson.Unmarshal([]byte(r.body), got); err != nil || !proto.Equal(got, m) {
		t.Fatalf("manifest JSON %s decodes to %v (%v), want %v", r.body, got, err, m)
	}
	if r2 := f.get(t, "GET", "/artifacts/"+key, map[string]string{"If-None-Match": r.header.Get("ETag")}); r2.code != http.StatusNotModified {
		t.Errorf("conditional GET of manifest: %d, want 304", r2.code)
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	f := serve(t)
	d := f.put(t, []byte("present"))
	before := f.store.Stats()
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/blobs/sha256/" + strings.ToUpper(d.Hash().String()), 400},
		{"/blobs/sha256/abc", 400},
		{"/blobs/sha256/..%2F..%2Fetc%2Fpasswd", 400},
		{"/blobs/sha256/" + digest.OfBytes([]byte("absent")).Hash().String(), 404},
		{"/artifacts/" + strings.Repeat("0", 64), 404},
		{"/artifacts/..%2F..%2Findex.db", 400},
		{"/artifacts/../index.db", 404},
		{"/artifacts/xyz", 400},
		{"/index.db", 404},
	} {
		r := f.get(t, "GET", tc.path, nil)
		if r.code != tc.code {
			t.Errorf("GET %s: %d %q, want %d", tc.path, r.code, r.body, tc.code)
		}
	}
	if r := f.get(t, "POST", "/blobs/sha256/"+d.Hash().String(), nil); r.code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405: the API is read-only", r.code)
	}
	if after := f.store.Stats(); after != before {
		t.Errorf("store changed from %+v to %+v", before, after)
	}
}

func TestCorruptBlobIsNeverServed(t *testing.T) {
	f := serve(t)
	content := bytes.Repeat([]byte("x"), 4096)
	d := f.put(t, content)
	h := d.Hash().String()
	if err := os.WriteFile(filepath.Join(f.dir, "blobs", h[:2], h), bytes.Repeat([]byte("y"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rng := range []string{"", "bytes=0-9"} {
		r := f.get(t, "GET", "/blobs/sha256/"+h, map[string]string{"Range": rng})
		if strings.Contains(r.body, "yyyy") {
			t.Fatalf("GET (range %q) served the corrupt bytes", rng)
		}
		if r.code < 400 {
			t.Fatalf("GET (range %q) of a corrupt blob: %d, want an error", rng, r.code)
		}
	}
	if _, ok := f.store.Lookup(d.Hash()); ok {
		t.Errorf("corrupt blob still in the store")
	}
}
