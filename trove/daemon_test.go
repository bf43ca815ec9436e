package trove_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distbuild/artifactcache"
	"distbuild/artifactcache/store"
	"distbuild/clock"
	"distbuild/digest"
	"distbuild/internal/addrfile"
	distbuildv1 "distbuild/proto/distbuild/v1"
	"distbuild/trove"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

type running struct {
	d      *trove.Daemon
	client *artifactcache.Client
	stop   func() error
}

// run starts a daemon in-process and returns a client for it; stop shuts
// it down and returns Serve's result.
func run(t *testing.T, cfg trove.Config) *running {
	t.Helper()
	cfg.GRPCListen = "127.0.0.1:0"
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Debug})
	d, err := trove.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	c, err := artifactcache.Dial(d.Addrs().GRPC)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	var result error
	stop := func() error {
		if !stopped {
			stopped = true
			c.Close()
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { stop() })
	return &running{d: d, client: c, stop: stop}
}

func blobFile(dir string, d digest.Digest) string {
	h := d.Hash().String()
	return filepath.Join(dir, "blobs", h[:2], h)
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	addrFile := filepath.Join(t.TempDir(), "addr.json")
	ctx := context.Background()
	r := run(t, trove.Config{Dir: dir, MaxSizeBytes: 1 << 20, HTTPListen: "127.0.0.1:0", AddrFile: addrFile})

	var addrs addrfile.Addrs
	raw, err := os.ReadFile(addrFile)
	if err != nil || json.Unmarshal(raw, &addrs) != nil || addrs != r.d.Addrs() {
		t.Fatalf("address file %q (%v) does not hold %+v", raw, err, r.d.Addrs())
	}
	d, err := r.client.UploadBytes(ctx, []byte("kept across restarts"))
	if err != nil {
		t.Fatal(err)
	}
	m := &distbuildv1.Manifest{CacheKey: strings.Repeat("5", 64), StepName: "s", Files: []*distbuildv1.ManifestFile{{Name: "f", Digest: d.Proto()}}}
	if err := r.client.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := os.Stat(addrFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("address file survived shutdown: %v", err)
	}

	r = run(t, trove.Config{Dir: dir, MaxSizeBytes: 1 << 20})
	key, _ := digest.ParseCacheKey(m.CacheKey)
	got, err := r.client.GetManifest(ctx, key)
	if err != nil || !proto.Equal(got, m) {
		t.Fatalf("after restart manifest %v, %v; want %v", got, err, m)
	}
	var buf bytes.Buffer
	if err := r.client.Fetch(ctx, d, &buf); err != nil || buf.String() != "kept across restarts" {
		t.Fatalf("after restart blob %q, %v", buf.String(), err)
	}
}

func TestPeriodicScrubFindsCorruption(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	r := run(t, trove.Config{Dir: dir, MaxSizeBytes: 1 << 20, ScrubInterval: time.Hour, Clock: clk})
	ctx := context.Background()
	d, err := r.client.UploadBytes(ctx, []byte("rots on disk"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobFile(dir, d), []byte("rots on d1sk"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing reads the blob; only the scrub, once its interval passes,
	// can notice. Keep advancing in case the scrubber's ticker was not
	// yet made when the clock first moved.
	deadline := time.Now().Add(20 * time.Second)
	for {
		clk.Advance(time.Hour)
		missing, _, err := r.client.FindMissing(ctx, []digest.Digest{d}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the periodic scrub did not quarantine the corrupt blob")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if q, _ := os.ReadDir(filepath.Join(dir, "quarantine")); len(q) != 1 {
		t.Errorf("quarantine holds %d files, want 1", len(q))
	}
}

func TestOfflineScrubReports(t *testing.T) {
	dir := t.TempDir()
	r := run(t, trove.Config{Dir: dir, MaxSizeBytes: 1 << 20})
	good, _ := r.client.UploadBytes(context.Background(), []byte("good"))
	bad, _ := r.client.UploadBytes(context.Background(), []byte("bad!"))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(blobFile(dir, bad), []byte("b@d!"), 0o644)

	var out bytes.Buffer
	report, err := trove.Scrub(context.Background(), dir, nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	if report.Checked != 2 || len(report.Corrupt) != 1 || report.Corrupt[0] != bad {
		t.Errorf("report %+v, want 2 checked and %s corrupt", report, bad)
	}
	if !strings.Contains(out.String(), bad.String()) || strings.Contains(out.String(), good.String()) {
		t.Errorf("report text should name only the corrupt blob:\n%s", out.String())
	}
	out.Reset()
	if report, err := trove.Scrub(context.Background(), dir, nil, &out); err != nil || len(report.Corrupt) != 0 || report.Checked != 1 {
		t.Errorf("second scrub: %+v, %v; want one intact blob", report, err)
	}
}

func TestStartRefusesBadConfigurations(t *testing.T) {
	dir := t.TempDir()
	run(t, trove.Config{Dir: dir, MaxSizeBytes: 1 << 20})
	for name, cfg := range map[string]trove.Config{
		"directory in use":      {Dir: dir, MaxSizeBytes: 1 << 20, GRPCListen: "127.0.0.1:0"},
		"git without HTTP":      {Dir: t.TempDir(), GRPCListen: "127.0.0.1:0", GitDir: t.TempDir()},
		"unusable gRPC address": {Dir: t.TempDir(), GRPCListen: "127.0.0.1:-1"},
		"unusable HTTP address": {Dir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:-1"},
	} {
		if d, err := trove.Start(cfg); err == nil {
			d.Serve(canceled())
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestScrubNowScrubsTheLiveStore(t *testing.T) {
	dir := t.TempDir()
	r := run(t, trove.Config{Dir: dir, MaxSizeBytes: 1 << 20})
	ctx := context.Background()
	good, err := r.client.UploadBytes(ctx, []byte("good"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := r.client.UploadBytes(ctx, []byte("bad!"))
	if err != nil {
		t.Fatal(err)
	}
	m := &distbuildv1.Manifest{CacheKey: strings.Repeat("7", 64), StepName: "s", Files: []*distbuildv1.ManifestFile{{Name: "f", Digest: bad.Proto()}}}
	if err := r.client.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(blobFile(dir, bad), []byte("b@d!"), 0o644)

	// The running trove holds the store, so an offline scrub must say
	// to go through the trove.
	var out bytes.Buffer
	if _, err := trove.Scrub(ctx, dir, nil, &out); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "trove scrub --trove") {
		t.Errorf("offline scrub of a live store: %v; want ErrLocked saying to use trove scrub --trove", err)
	}

	conn, err := grpc.NewClient(r.d.Addrs().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out.Reset()
	report, err := trove.ScrubLive(ctx, conn, &out)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := digest.ParseCacheKey(m.CacheKey)
	if report.Checked != 2 || len(report.Corrupt) != 1 || report.Corrupt[0] != bad || len(report.DroppedManifests) != 1 || report.DroppedManifests[0] != key {
		t.Errorf("report %+v, want 2 checked, %s corrupt and manifest %s dropped", report, bad, key)
	}
	if !strings.Contains(out.String(), "checked 2 blobs") || !strings.Contains(out.String(), bad.String()) || strings.Contains(out.String(), good.String()) {
		t.Errorf("report text should count 2 blobs and name only the corrupt one:\n%s", out.String())
	}
	// The trove serves on without the corrupt blob.
	if missing, _, err := r.client.FindMissing(ctx, []digest.Digest{good, bad}, []digest.CacheKey{key}); err != nil || len(missing) != 1 || missing[0] != bad {
		t.Errorf("after the scrub missing %v (%v), want only %s", missing, err, bad)
	}
	if q, _ := os.ReadDir(filepath.Join(dir, "quarantine")); len(q) != 1 {
		t.Errorf("quarantine holds %d files, want 1", len(q))
	}
}
