package auth_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"distbuild/auth"
)

func TestRegistryStoresOnlyHashesAndRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new-state-dir", "registry.json")
	r, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	token, err := r.Add(auth.KindWorker, "w1", []byte("public key"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "worker_") || len(token) < 40 {
		t.Errorf("token %q does not look like a worker token", token)
	}
	if _, err := r.Add(auth.KindWorker, "w1", nil); err == nil {
		t.Error("a second w1 was accepted")
	}
	for _, bad := range []string{"", "../x", "a b", strings.Repeat("x", 200)} {
		if _, err := r.Add(auth.KindUser, bad, nil); err == nil {
			t.Errorf("user name %q was accepted", bad)
		}
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), token) {
		t.Error("the registry file holds the token itself")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("registry mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := auth.Load(path)
	if err != nil || len(again.Names(auth.KindWorker)) != 1 || string(again.Workers["w1"].PublicKey) != "public key" {
		t.Errorf("reloaded registry %+v %v", again, err)
	}
	if err := again.Remove(auth.KindWorker, "nope"); err == nil {
		t.Error("removing an unknown worker succeeded")
	}
}

// server runs grpc's health service behind the interceptors, allowing Check
// to users and Watch to workers.
func server(t *testing.T, a *auth.Authenticator) healthpb.HealthClient {
	t.Helper()
	policy := func(method string) []auth.Kind {
		if strings.HasSuffix(method, "/Check") {
			return []auth.Kind{auth.KindUser}
		}
		return []auth.Kind{auth.KindWorker}
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(a.UnaryInterceptor(policy, hclog.NewNullLogger())), grpc.StreamInterceptor(a.StreamInterceptor(policy, hclog.NewNullLogger())))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func TestInterceptorsLetInOnlyRegisteredPrincipalsOfTheRightKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.json")
	r, _ := auth.Load(path)
	userToken, _ := r.Add(auth.KindUser, "alice", nil)
	workerToken, _ := r.Add(auth.KindWorker, "w1", nil)
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	client := server(t, a)
	ctx := context.Background()
	with := func(tok string) grpc.CallOption { return grpc.PerRPCCredentials(auth.Token(tok)) }

	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, with(userToken)); err != nil {
		t.Errorf("a user's Check: %v", err)
	}
	for name, tc := range map[string]struct {
		opts []grpc.CallOption
		code codes.Code
	}{
		"no token":          {nil, codes.Unauthenticated},
		"made-up token":     {[]grpc.CallOption{with("user_forged")}, codes.Unauthenticated},
		"worker calls user": {[]grpc.CallOption{with(workerToken)}, codes.PermissionDenied},
	} {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, tc.opts...); status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want %v", name, err, tc.code)
		}
	}
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{}, with(workerToken))
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		t.Errorf("a worker's Watch stream: %v", err)
	}

	// Revoking takes effect without restarting anything.
	r.Remove(auth.KindUser, "alice")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, with(userToken)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a revoked user's Check: %v, want Unauthenticated", err)
	}
}

func TestTokenFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	os.WriteFile(good, []byte("user_abc\n"), 0o600)
	if tok, err := auth.ReadTokenFile(good); err != nil || tok != "user_abc" {
		t.Errorf("ReadTokenFile = %q, %v", tok, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := auth.ReadTokenFile(empty); err == nil {
		t.Error("an empty token file was accepted")
	}
}

func TestReloadSeesAnEditTheFilesSizeAndTimeHide(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.json")
	r, _ := auth.Load(path)
	token, _ := r.Add(auth.KindWorker, "w1", nil)
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	// Revoke w1 and register w2 under a name as long: the same size, and
	// the old modification time put back.
	r.Remove(auth.KindWorker, "w1")
	r.Add(auth.KindWorker, "w2", nil)
	r.Workers["w2"] = auth.Entry{TokenSHA256: r.Workers["w2"].TokenSHA256, Added: fi.ModTime().UTC()}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(path); fi2.Size() != fi.Size() {
		t.Skipf("the edited registry is %d bytes, not %d: the test needs the same size", fi2.Size(), fi.Size())
	}
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	if _, err := a.Authenticate(token); err != nil {
		t.Fatalf("before Reload the unchanged-looking file should still be believed: %v", err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(token); err == nil {
		t.Error("after Reload w1's revoked token still works")
	}
}
