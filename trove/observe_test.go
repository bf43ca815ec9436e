package trove_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"distbuild/internal/observability/observabilitytest"
	"distbuild/trove"
)

// TestHealthAndReflectionAnswerUntilShutdown asks the gRPC listener what
// grpcurl asks, and watches health turn NOT_SERVING when shutdown begins.
func TestHealthAndReflectionAnswerUntilShutdown(t *testing.T) {
	r := run(t, trove.Config{Dir: t.TempDir(), MaxSizeBytes: 1 << 20})
	conn, err := grpc.NewClient(r.d.Addrs().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	names, err := observabilitytest.Services(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"distbuild.v1.ArtifactCacheService", "distbuild.v1.CacheAdminService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}
	for _, svc := range []string{"", "distbuild.v1.ArtifactCacheService"} {
		if st, err := observabilitytest.Health(ctx, conn, svc); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v %v, want SERVING", svc, st, err)
		}
	}

	watchCtx, stopWatching := context.WithCancel(ctx)
	watch, err := healthpb.NewHealthClient(conn).Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watching health: %v %v, want SERVING", resp, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	resp, err := watch.Recv()
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health once shutdown began: %v %v, want NOT_SERVING", resp, err)
	}
	stopWatching() // the drain waits for in-flight calls, this one too
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestMetricsCountTrafficAndTheStore scrapes /metrics on the HTTP
// listener after an upload and downloads over gRPC and HTTP.
func TestMetricsCountTrafficAndTheStore(t *testing.T) {
	r := run(t, trove.Config{Dir: t.TempDir(), MaxSizeBytes: 1 << 20, HTTPListen: "127.0.0.1:0"})
	base := "http://" + r.d.Addrs().HTTP
	ctx := context.Background()
	content := bytes.Repeat([]byte("metric"), 1000)
	d, err := r.client.UploadBytes(ctx, content)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.client.Fetch(ctx, d, &buf); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/blobs/sha256/" + d.Hash().String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// The HTTP request is counted once its handler returns, which may be
	// just after the client has its answer.
	m := observabilitytest.Scrape(t, nil, base+"/metrics")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); m = observabilitytest.Scrape(t, nil, base+"/metrics") {
		if n, _ := m.Value("distbuild_trove_http_requests_total", "handler", "blobs", "code", "200"); n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	size := float64(len(content))
	for _, c := range []struct {
		name            string
		labels          []string
		atLeast, atMost float64
	}{
		{"distbuild_trove_blobs_received_total", nil, 1, 1},
		{"distbuild_trove_blobs_sent_total", nil, 1, 1},
		{"distbuild_trove_grpc_received_bytes_total", []string{"method", "distbuild.v1.ArtifactCacheService/Write"}, size, 2 * size},
		{"distbuild_trove_grpc_sent_bytes_total", []string{"method", "distbuild.v1.ArtifactCacheService/Read"}, size, 2 * size},
		{"distbuild_trove_grpc_request_duration_seconds", []string{"method", "distbuild.v1.ArtifactCacheService/Write"}, 1, 1},
		{"distbuild_trove_store_blobs", nil, 1, 1},
		{"distbuild_trove_store_bytes", nil, size, size},
		{"distbuild_trove_store_max_bytes", nil, 1 << 20, 1 << 20},
		{"distbuild_trove_evictions_total", nil, 0, 0},
		{"distbuild_trove_http_requests_total", []string{"handler", "blobs", "code", "200"}, 1, 1},
	} {
		if got, ok := m.Value(c.name, c.labels...); !ok || got < c.atLeast || got > c.atMost {
			t.Errorf("%s%v = %v (present %v), want %v to %v", c.name, c.labels, got, ok, c.atLeast, c.atMost)
		}
	}
}
