package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"distbuild/clock"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// testStore opens a store in dir with a fake clock and logs into the test.
func testStore(t *testing.T, dir string, maxSize int64, clk *clock.Fake) *Store {
	t.Helper()
	s, err := Open(Options{
		Dir:          dir,
		MaxSizeBytes: maxSize,
		Clock:        clk,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Debug}),
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t testing.TB, s *Store, content []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(content)
	w, err := s.NewBlobWriter(d)
	if err != nil {
		t.Fatalf("start upload of %s: %v", d, err)
	}
	if err := w.WriteAsync(content, nil); err != nil {
		t.Fatalf("write %s: %v", d, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("commit %s: %v", d, err)
	}
	return d
}

// readAll streams a whole blob, returning what was sent before any error.
func readAll(s *Store, d digest.Digest) ([]byte, error) {
	b, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var out bytes.Buffer
	err = b.Stream(context.Background(), 0, 0, func(p []byte) error { out.Write(p); return nil })
	return out.Bytes(), err
}

func manifest(key string, files ...digest.Digest) *distbuildv1.Manifest {
	m := &distbuildv1.Manifest{CacheKey: key, StepName: "step", Kind: distbuildv1.StepKind_STEP_KIND_CHUNK, Worker: "w1"}
	for i, d := range files {
		m.Files = append(m.Files, &distbuildv1.ManifestFile{Name: fmt.Sprintf("file%d", i), Role: distbuildv1.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()})
	}
	return m
}

// key makes a distinct well-formed cache key from a small number.
func key(n int) string { return fmt.Sprintf("%064x", n) }

func mustKey(t *testing.T, s string) digest.CacheKey {
	t.Helper()
	k, err := digest.ParseCacheKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got error %v (code %s), want code %s", err, got, want)
	}
}

// has looks at the catalog directly: FindMissing would count as a use and
// change the eviction order the tests are checking.
func has(s *Store, d digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cat.hasBlob(d)
}

func hasManifest(s *Store, k string) bool {
	key, _ := digest.ParseCacheKey(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.cat.manifests[key]
	return ok
}

// dirEntries lists a directory, failing the test if it cannot.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
