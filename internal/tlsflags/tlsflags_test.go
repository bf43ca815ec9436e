package tlsflags_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"distbuild/internal/tlsflags"
	"distbuild/internal/tlsflags/tlstest"
)

func serve(t *testing.T, s tlsflags.Server) string {
	t.Helper()
	opts, err := s.GRPCOptions()
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func call(t *testing.T, addr string, c tlsflags.Client) error {
	t.Helper()
	opt, err := c.DialOption()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestTLSAndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, serverCert, serverKey := tlstest.Generate(t, dir, "server")
	clientCA, clientCert, clientKey := tlstest.Generate(t, dir, "client")
	otherCA, _, _ := tlstest.Generate(t, dir, "other")

	tlsOnly := serve(t, tlsflags.Server{Cert: serverCert, Key: serverKey})
	if err := call(t, tlsOnly, tlsflags.Client{CA: serverCA}); err != nil {
		t.Errorf("TLS with the right CA: %v", err)
	}
	if err := call(t, tlsOnly, tlsflags.Client{}); err == nil {
		t.Error("a plaintext client got through to a TLS server")
	}
	if err := call(t, tlsOnly, tlsflags.Client{CA: otherCA}); err == nil {
		t.Error("a client trusting another CA accepted the server")
	}

	mutual := serve(t, tlsflags.Server{Cert: serverCert, Key: serverKey, ClientCA: clientCA})
	if err := call(t, mutual, tlsflags.Client{CA: serverCA}); err == nil {
		t.Error("a client without a certificate got through mTLS")
	}
	if err := call(t, mutual, tlsflags.Client{CA: serverCA, Cert: clientCert, Key: clientKey}); err != nil {
		t.Errorf("mTLS with a client certificate: %v", err)
	}
}

func TestBadFlagCombinationsAreRefused(t *testing.T) {
	for name, s := range map[string]tlsflags.Server{
		"cert without key": {Cert: "x.pem"},
		"missing files":    {Cert: "/nonexistent.pem", Key: "/nonexistent.key"},
		"client CA only":   {ClientCA: "ca.pem"},
	} {
		if _, err := s.Config(); err == nil {
			t.Errorf("server %s: accepted", name)
		}
	}
	if _, err := (tlsflags.Client{Cert: "c.pem", Key: "c.key"}).DialOption(); err == nil {
		t.Error("a client certificate without --tls-ca was accepted")
	}
	if _, err := (tlsflags.Client{CA: "/nonexistent.pem"}).DialOption(); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
