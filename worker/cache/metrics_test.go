package cache_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"distbuild/digest"
	"distbuild/internal/observability"
	"distbuild/internal/observability/observabilitytest"
	"distbuild/worker/cache"
	"distbuild/worker/cache/cachetest"
)

func TestMetricsCountFetchesUploadsAndLocalHits(t *testing.T) {
	ctx := context.Background()
	reg := observability.NewRegistry()
	backend := cachetest.NewMemory()
	local, err := cache.NewLocal(t.TempDir(), 1<<20, cache.NewMetered(backend, reg), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	cache.RegisterLocalMetrics(reg, local)
	srv := httptest.NewServer(observability.MetricsHandler(reg))
	defer srv.Close()

	content := []byte("a staged artifact")
	d := digest.OfBytes(content)
	if err := local.Upload(ctx, d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := local.DownloadWithProgress(ctx, d, filepath.Join(t.TempDir(), "blob"), nil); err != nil {
			t.Fatalf("download %d: %v", i, err)
		}
	}
	m := observabilitytest.Scrape(t, nil, srv.URL)
	size := float64(len(content))
	for _, c := range []struct {
		name string
		want float64
	}{
		{"distbuild_worker_uploaded_blobs_total", 1},
		{"distbuild_worker_uploaded_bytes_total", size},
		{"distbuild_worker_fetched_blobs_total", 1}, // the second came from disk
		{"distbuild_worker_fetched_bytes_total", size},
		{"distbuild_worker_blob_cache_misses_total", 1},
		{"distbuild_worker_blob_cache_hits_total", 1},
		{"distbuild_worker_blob_cache_blobs", 1},
		{"distbuild_worker_blob_cache_bytes", size},
		{"distbuild_worker_blob_cache_max_bytes", 1 << 20},
	} {
		if got, ok := m.Value(c.name); !ok || got != c.want {
			t.Errorf("%s = %v (present %v), want %v", c.name, got, ok, c.want)
		}
	}
}
