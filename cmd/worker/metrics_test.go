package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"distbuild/internal/addrfile"
	"distbuild/internal/observability/observabilitytest"
)

// TestMetricsListenServesMetricsAndWritesItsAddress runs the real binary
// with --metrics-listen on port 0 and scrapes the address it wrote.
func TestMetricsListenServesMetricsAndWritesItsAddress(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addrPath := filepath.Join(dir, "addr")
	cmd := exec.Command(bin, "--work-dir", filepath.Join(dir, "work"), "--sandbox", "none", "--name", "w1",
		"--controller", "127.0.0.1:1", "--cache", "127.0.0.1:1", "--blob-cache-size", "5MiB",
		"--metrics-listen", "127.0.0.1:0", "--addr-file", addrPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var addrs addrfile.Addrs
	for deadline := time.Now().Add(20 * time.Second); addrs.Metrics == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if data, err := os.ReadFile(addrPath); err == nil {
			json.Unmarshal(data, &addrs)
		}
	}
	if addrs.Metrics == "" {
		t.Fatal("the worker never wrote its metrics address")
	}
	m := observabilitytest.Scrape(t, nil, "http://"+addrs.Metrics+"/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"distbuild_worker_jobs", []string{"phase", "running"}, 0},
		{"distbuild_worker_steps_finished_total", []string{"outcome", "built"}, 0},
		{"distbuild_worker_fetched_bytes_total", nil, 0},
		{"distbuild_worker_blob_cache_max_bytes", nil, 5 << 20},
	} {
		if got, ok := m.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if _, err := os.Stat(addrPath); !os.IsNotExist(err) {
		t.Errorf("the address file outlived the worker: %v", err)
	}
}
