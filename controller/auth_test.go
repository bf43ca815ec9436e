package controller_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"distbuild/auth"
	"distbuild/controller"
	"distbuild/internal/observability/observabilitytest"
	pb "distbuild/proto/distbuild/v1"
)

func TestAuthenticationLetsInOnlyRegisteredWorkersAndUsers(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	tokens, _, _ := f.requireAuth(map[string]auth.Kind{"alice": auth.KindUser, "w1": auth.KindWorker})
	userToken, workerToken := tokens["alice"], tokens["w1"]
	dial := func(token string) *grpc.ClientConn {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(auth.Token(token)))
		}
		conn, err := grpc.NewClient(f.addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	register := func(conn *grpc.ClientConn, name string) error {
		stream, err := pb.NewWorkerServiceClient(conn).Work(context.Background())
		if err != nil {
			return err
		}
		stream.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: &pb.WorkerRegistration{Name: name, Slots: 1, Arch: "x86_64"}}})
		_, err = stream.Recv()
		return err
	}
	ctx := context.Background()
	for name, tc := range map[string]struct {
		conn *grpc.ClientConn
		code codes.Code
	}{
		"anonymous":       {dial(""), codes.Unauthenticated},
		"forged":          {dial("user_not-a-real-token"), codes.Unauthenticated},
		"worker as user":  {dial(workerToken), codes.PermissionDenied},
		"registered user": {dial(userToken), codes.OK},
	} {
		_, err := pb.NewBuildServiceClient(tc.conn).List(ctx, &pb.ListRequest{})
		if status.Code(err) != tc.code {
			t.Errorf("%s listing builds: %v, want %v", name, err, tc.code)
		}
	}
	if err := register(dial(userToken), "w1"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a user registering as a worker: %v, want PermissionDenied", err)
	}
	if err := register(dial(workerToken), "w2"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("w1's token registering as w2: %v, want PermissionDenied", err)
	}
	if err := register(dial(workerToken), "w1"); err != nil {
		t.Errorf("w1 registering with its own token: %v", err)
	}
}

// requireAuth restarts the farm's controller behind authentication, with a
// registry of the given principals; it returns their tokens by name, the
// registry and its file.
func (f *farm) requireAuth(principals map[string]auth.Kind) (map[string]string, *auth.Registry, string) {
	f.t.Helper()
	path := filepath.Join(f.t.TempDir(), "registry.json")
	r, _ := auth.Load(path)
	tokens := map[string]string{}
	for name, kind := range principals {
		tokens[name], _ = r.Add(kind, name, nil)
	}
	if err := r.Save(path); err != nil {
		f.t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(path)
	if err != nil {
		f.t.Fatal(err)
	}
	a.RevocationPoll = 20 * time.Millisecond
	f.opts = []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor(controller.Policy, hclog.NewNullLogger())),
		grpc.ChainStreamInterceptor(a.StreamInterceptor(controller.Policy, hclog.NewNullLogger())),
	}
	f.restartController()
	return tokens, r, path
}

// TestHealthIsOpenAndReflectionFollowsTheAPIsRules: probes carry no
// token, so health answers anyone; reflection describes the API, so only
// the registered may use it.
func TestHealthIsOpenAndReflectionFollowsTheAPIsRules(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	tokens, _, _ := f.requireAuth(map[string]auth.Kind{"alice": auth.KindUser, "w1": auth.KindWorker})
	ctx := context.Background()
	for name, tc := range map[string]struct {
		token      string
		reflection codes.Code
	}{
		"anonymous":         {"", codes.Unauthenticated},
		"forged":            {"user_not-a-real-token", codes.Unauthenticated},
		"registered user":   {tokens["alice"], codes.OK},
		"registered worker": {tokens["w1"], codes.OK},
	} {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if tc.token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(auth.Token(tc.token)))
		}
		conn, err := grpc.NewClient(f.addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if st, err := observabilitytest.Health(ctx, conn, ""); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s checking health: %v %v, want SERVING", name, st, err)
		}
		names, err := observabilitytest.Services(ctx, conn)
		if status.Code(err) != tc.reflection {
			t.Errorf("%s listing services: %v, want %v", name, err, tc.reflection)
		}
		if err == nil && !slices.Contains(names, "distbuild.v1.BuildService") {
			t.Errorf("%s listing services: %v, want distbuild.v1.BuildService among them", name, names)
		}
	}
}
