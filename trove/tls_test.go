package trove_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"testing"

	"github.com/hashicorp/go-hclog"

	"distbuild/artifactcache"
	"distbuild/internal/tlsflags"
	"distbuild/internal/tlsflags/tlstest"
	"distbuild/trove"
)

func TestBothListenersServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := tlstest.Generate(t, dir, "trove")
	cfg, err := tlsflags.Server{Cert: cert, Key: key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	d, err := trove.Start(trove.Config{Dir: t.TempDir(), MaxSizeBytes: 1 << 20, GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", TLS: cfg, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	creds, err := tlsflags.Client{CA: ca}.DialOption()
	if err != nil {
		t.Fatal(err)
	}
	c, err := artifactcache.Dial(d.Addrs().GRPC, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	blob, err := c.UploadBytes(ctx, []byte("over TLS"))
	if err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}

	pem, _ := os.ReadFile(ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + d.Addrs().HTTP + "/blobs/sha256/" + blob.Hash().String())
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len("over TLS")) {
		t.Errorf("HTTPS GET: %s, length %d", resp.Status, resp.ContentLength)
	}
	if resp, err := http.Get("http://" + d.Addrs().HTTP + "/blobs/sha256/" + blob.Hash().String()); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("plaintext HTTP was served on the TLS listener")
	}
}
