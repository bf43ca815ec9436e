package trove_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"testing"

	"distbuild/internal/tlsflags"
	"distbuild/internal/tlsflags/tlstest"
	"distbuild/trove"
	"distbuild/trove/trovetest"
)

func TestBothListenersServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := tlstest.Generate(t, dir, "trove")
	cfg, err := tlsflags.Server{Cert: cert, Key: key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	d := trovetest.Start(t, trove.Config{MaxSizeBytes: 1 << 20, HTTPListen: "127.0.0.1:0", TLS: cfg})

	creds, err := tlsflags.Client{CA: ca}.DialOption()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := trovetest.Client(t, d, creds).UploadBytes(t.Context(), []byte("over TLS"))
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
