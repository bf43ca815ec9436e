package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"distbuild/internal/addrfile"
	pb "distbuild/proto/distbuild/v1"
)

// startController runs the controller binary with args and returns the
// addresses it wrote to its address file.
func startController(t *testing.T, bin string, args ...string) addrfile.Addrs {
	t.Helper()
	addrs, _ := startControllerProcess(t, bin, args...)
	return addrs
}

// startControllerProcess is startController, also returning the process.
func startControllerProcess(t *testing.T, bin string, args ...string) (addrfile.Addrs, *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	addrPath := filepath.Join(dir, "addr")
	cmd := exec.Command(bin, append([]string{"--state-dir", filepath.Join(dir, "state"), "--cache", "127.0.0.1:1",
		"--addr-file", addrPath, "--http-listen", "127.0.0.1:0"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(addrPath); err == nil && len(data) > 0 {
			var addrs addrfile.Addrs
			if err := json.Unmarshal(data, &addrs); err != nil {
				t.Fatal(err)
			}
			return addrs, cmd
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the controller never wrote its address file")
	return addrfile.Addrs{}, nil
}

// serves reports which of the controller's services answer at addr.
func serves(t *testing.T, addr string) (builds, workers bool) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pb.NewBuildServiceClient(conn).List(ctx, &pb.ListRequest{})
	builds = status.Code(err) != codes.Unimplemented
	stream, err := pb.NewWorkerServiceClient(conn).Work(ctx)
	if err == nil {
		stream.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: &pb.WorkerRegistration{Name: "w1", Slots: 1, Arch: "x86_64"}}})
		_, err = stream.Recv()
	}
	workers = status.Code(err) != codes.Unimplemented
	return builds, workers
}

func TestInitiatorsAndWorkersHaveListenersOfTheirOwn(t *testing.T) {
	bin := controllerBinary(t)
	apart := startController(t, bin, "--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0")
	if apart.GRPC == apart.Worker {
		t.Fatalf("one address for both listeners: %+v", apart)
	}
	if builds, workers := serves(t, apart.GRPC); !builds || workers {
		t.Errorf("--listen %s: builds=%v workers=%v; want only builds", apart.GRPC, builds, workers)
	}
	if builds, workers := serves(t, apart.Worker); builds || !workers {
		t.Errorf("--worker-listen %s: builds=%v workers=%v; want only workers", apart.Worker, builds, workers)
	}

	// One address for both keeps the single-port set-up working.
	port := freePort(t)
	one := startController(t, bin, "--listen", port, "--worker-listen", port)
	if one.GRPC != one.Worker {
		t.Fatalf("--listen and --worker-listen both %s, but the controller listens on %+v", port, one)
	}
	if builds, workers := serves(t, one.GRPC); !builds || !workers {
		t.Errorf("one listener %s: builds=%v workers=%v; want both", one.GRPC, builds, workers)
	}
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
