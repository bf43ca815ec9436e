// Package trovetest runs a real trove in-process for other packages'
// tests, so that they exercise the real cache over real gRPC rather than a
// fake, without each repeating how to start, serve and stop one.
package trovetest

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"distbuild/artifactcache"
	"distbuild/trove"
)

// Start starts a trove with cfg and serves it until the test ends, when it
// must stop cleanly. Left empty, Dir is a fresh temporary directory,
// GRPCListen a free loopback port, MaxSizeBytes 1 GiB and Logger silent.
func Start(t testing.TB, cfg trove.Config) *trove.Daemon {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.GRPCListen == "" {
		cfg.GRPCListen = "127.0.0.1:0"
	}
	if cfg.MaxSizeBytes == 0 {
		cfg.MaxSizeBytes = 1 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	d, err := trove.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the trove stopped with %v", err)
		}
	})
	return d
}

// Client dials the trove's artifact cache; the connection is closed when
// the test ends, before the trove stops.
func Client(t testing.TB, d *trove.Daemon, opts ...grpc.DialOption) *artifactcache.Client {
	t.Helper()
	c, err := artifactcache.Dial(d.Addrs().GRPC, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
