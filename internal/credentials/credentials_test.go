package credentials_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"distbuild/internal/credentials"
	"distbuild/internal/tlsflags"
)

func TestTheTokenFromTheFileGoesWithEveryCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w1.token")
	os.WriteFile(path, []byte("worker_secret\n"), 0o600)
	opts, err := credentials.DialOptions(tlsflags.Client{}, path)
	if err != nil {
		t.Fatal(err)
	}
	// A server that reports the authorization header it was sent.
	lis := listen(t)
	got := make(chan string, 1)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		md, _ := metadata.FromIncomingContext(stream.Context())
		got <- strings.Join(md.Get("authorization"), ",")
		return nil
	}))
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Invoke(context.Background(), "/any.Service/Call", nil, nil)
	if auth := <-got; auth != "Bearer worker_secret" {
		t.Errorf("the server was sent %q, want the file's token", auth)
	}
}

func TestAMissingOrEmptyTokenFileIsAnError(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, path := range []string{filepath.Join(t.TempDir(), "missing"), empty} {
		if _, err := credentials.DialOptions(tlsflags.Client{}, path); err == nil || !strings.Contains(err.Error(), "token file") {
			t.Errorf("%s: %v, want an error about the token file", path, err)
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}
