package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"distbuild/internal/observability/observabilitytest"
	pb "distbuild/proto/distbuild/v1"
)

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestEachListenerAnswersHealthAndReflection asks both gRPC listeners
// what grpcurl asks, then watches health while the controller stops.
func TestEachListenerAnswersHealthAndReflection(t *testing.T) {
	addrs, proc := startControllerProcess(t, controllerBinary(t), "--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0")
	ctx := context.Background()
	for _, l := range []struct {
		addr, serves, not string
	}{
		{addrs.GRPC, "distbuild.v1.BuildService", "distbuild.v1.WorkerService"},
		{addrs.Worker, "distbuild.v1.WorkerService", "distbuild.v1.BuildService"},
	} {
		conn := dial(t, l.addr)
		names, err := observabilitytest.Services(ctx, conn)
		if err != nil {
			t.Fatalf("reflection on %s: %v", l.addr, err)
		}
		if !slices.Contains(names, l.serves) || !slices.Contains(names, "grpc.health.v1.Health") || slices.Contains(names, l.not) {
			t.Errorf("reflection on %s lists %v, want %s and grpc.health.v1.Health, not %s", l.addr, names, l.serves, l.not)
		}
		for _, svc := range []string{"", l.serves} {
			if st, err := observabilitytest.Health(ctx, conn, svc); err != nil || st != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health of %q on %s: %v %v, want SERVING", svc, l.addr, st, err)
			}
		}
	}

	watch, err := healthpb.NewHealthClient(dial(t, addrs.Worker)).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watching health: %v %v, want SERVING", resp, err)
	}
	proc.Process.Signal(syscall.SIGTERM)
	if resp, err := watch.Recv(); err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health while the controller stops: %v %v, want NOT_SERVING", resp, err)
	}
}

// TestMetricsAndTheJSONAPIShowConnectedWorkers scrapes the real binary's
// HTTP listener as Prometheus and a script would.
func TestMetricsAndTheJSONAPIShowConnectedWorkers(t *testing.T) {
	addrs := startController(t, controllerBinary(t), "--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0")
	if addrs.HTTP == "" {
		t.Fatalf("no HTTP address in the address file: %+v", addrs)
	}
	metrics := "http://" + addrs.HTTP + "/metrics"
	m := observabilitytest.Scrape(t, nil, metrics)
	if v, ok := m.Value("distbuild_controller_workers_connected"); !ok || v != 0 {
		t.Errorf("workers connected = %v (present %v) before any, want 0", v, ok)
	}
	if _, ok := m.Value("go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pb.NewWorkerServiceClient(dial(t, addrs.Worker)).Work(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: &pb.WorkerRegistration{Name: "w1", Slots: 3, Arch: "x86_64"}}})
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	m = observabilitytest.Scrape(t, nil, metrics)
	if v, _ := m.Value("distbuild_controller_workers_connected"); v != 1 {
		t.Errorf("workers connected = %v with w1 registered, want 1", v)
	}
	if v, _ := m.Value("distbuild_controller_worker_slots", "state", "free"); v != 3 {
		t.Errorf("free slots = %v with w1's 3, want 3", v)
	}
	resp, err := http.Get("http://" + addrs.HTTP + "/api/workers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Workers []struct {
			Name  string
			Slots int
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Workers) != 1 || body.Workers[0].Name != "w1" || body.Workers[0].Slots != 3 {
		t.Errorf("/api/workers: %+v %v, want w1 with 3 slots", body, err)
	}
}
