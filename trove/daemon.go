// Package trove assembles the trove daemon: the artifact cache's gRPC service,
// its admin service (on-demand scrubs), its read-only HTTP API and the git
// server, over one store, with periodic scrubbing and an orderly shutdown.
// It holds what cmd/trove would otherwise have to, so the binary stays a
// thin layer of flags and the whole daemon can be started in-process by
// tests.
package trove

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/cached"
	"distbuild/artifactcache/httpapi"
	"distbuild/artifactcache/service"
	"distbuild/artifactcache/store"
	"distbuild/clock"
	"distbuild/internal/addrfile"
	"distbuild/internal/observability"
	distbuildv1 "distbuild/proto/distbuild/v1"
	"distbuild/trove/gitserver"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// GitPrefix is where the git repositories appear on the HTTP listener.
const GitPrefix = "/git"

// Config says what the daemon serves and where.
type Config struct {
	// Dir is the store directory: the whole cache, or with Remote the
	// bounded local copy of it.
	Dir string
	// Remote, when set, is a store shared with other troves (an S3
	// bucket) that holds the cache, with the store in Dir as a bounded
	// read-through cache in front of it (see artifactcache/cached).
	Remote backend.Store
	// MaxSizeBytes caps the blobs' total size; see store.Options.
	MaxSizeBytes int64
	// GRPCListen is the address of the gRPC service ("host:port"; port 0
	// picks a free one, see Addrs).
	GRPCListen string
	// HTTPListen is the address of the read-only HTTP API and the git
	// server; empty turns HTTP off.
	HTTPListen string
	// GitDir holds bare repositories to serve under GitPrefix on the HTTP
	// listener; empty serves none.
	GitDir string
	// ScrubInterval is how often every blob is re-hashed; 0 turns
	// periodic scrubbing off.
	ScrubInterval time.Duration
	// AccessFlushInterval is how often access times reach the index; 0
	// means store.DefaultAccessFlushInterval.
	AccessFlushInterval time.Duration
	// ShutdownTimeout is how long in-flight requests may take to finish
	// once shutdown begins, before they are cut off.
	ShutdownTimeout time.Duration
	// AddrFile, if set, receives the actual listen addresses as JSON once
	// the daemon listens (see addrfile.Write).
	AddrFile string
	// UploadIdleTimeout ends uploads through which no content arrives for
	// this long; 0 means service.DefaultUploadIdleTimeout.
	UploadIdleTimeout time.Duration
	// Verifier checks manifests before they are stored; nil accepts all.
	Verifier service.ManifestVerifier
	// ServerOptions are added to the gRPC server's, e.g. authentication
	// interceptors.
	ServerOptions []grpc.ServerOption
	// TLS, when set, secures both listeners (and with ClientCAs, requires
	// client certificates); nil serves plaintext.
	TLS *tls.Config
	// Clock drives scrubs, access times and upload idle limits; nil is
	// the system clock.
	Clock clock.Clock
	// Logger receives what happens; nil discards it.
	Logger hclog.Logger
}

// servedStore is what both the gRPC service and the HTTP API need.
type servedStore interface {
	backend.Store
	httpapi.Source
}

// Daemon is a started trove: its store is open and its listeners bound.
type Daemon struct {
	cfg      Config
	log      hclog.Logger
	store    *store.Store
	served   servedStore // what the services use: store, or store in front of Remote
	grpc     *grpc.Server
	grpcLis  net.Listener
	http     *http.Server
	httpLis  net.Listener
	addrs    addrfile.Addrs
	scrubber *scrubber
	metrics  *metrics
	// health answers gRPC health checks: SERVING while the store can be
	// used, NOT_SERVING while it cannot and from the start of shutdown.
	health *observability.Health
}

// Start opens the store and binds the listeners, so that by the time it
// returns clients can connect (they are served once Serve runs) and Addrs
// is known.
func Start(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.GitDir != "" && cfg.HTTPListen == "" {
		return nil, errors.New("serving git repositories needs an HTTP listener")
	}
	st, err := store.Open(store.Options{
		Dir:                 cfg.Dir,
		MaxSizeBytes:        cfg.MaxSizeBytes,
		Clock:               cfg.Clock,
		Logger:              cfg.Logger.Named("store"),
		AccessFlushInterval: cfg.AccessFlushInterval,
	})
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, store: st, served: backend.Local(st), metrics: newMetrics(st)}
	if cfg.Remote != nil {
		d.served = cached.New(st, cfg.Remote, cfg.Logger.Named("cached"))
	}
	d.scrubber = newScrubber(st, cfg.Clock, cfg.ScrubInterval, cfg.Logger.Named("scrub"))
	d.scrubber.metrics = d.metrics
	if err := d.listen(); err != nil {
		d.closeListeners()
		st.Close()
		return nil, err
	}
	if cfg.AddrFile != "" {
		if err := addrfile.Write(cfg.AddrFile, d.addrs); err != nil {
			d.closeListeners()
			st.Close()
			return nil, err
		}
	}
	d.log.Info("listening", "grpc", d.addrs.GRPC, "http", d.addrs.HTTP, "git", cfg.GitDir != "")
	return d, nil
}

func (d *Daemon) listen() error {
	lis, err := net.Listen("tcp", d.cfg.GRPCListen)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	d.grpcLis = lis
	d.addrs.GRPC = lis.Addr().String()
	opts := append(service.ServerOptions(), d.cfg.ServerOptions...)
	opts = append(opts, grpc.StatsHandler(grpcStats{d.metrics}))
	if d.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(d.cfg.TLS)))
	}
	d.grpc = grpc.NewServer(opts...)
	distbuildv1.RegisterArtifactCacheServiceServer(d.grpc, service.New(d.served, service.Options{
		Verifier:          d.cfg.Verifier,
		Logger:            d.log.Named("grpc"),
		UploadIdleTimeout: d.cfg.UploadIdleTimeout,
		Clock:             d.cfg.Clock,
	}))
	distbuildv1.RegisterCacheAdminServiceServer(d.grpc, &adminService{scrubber: d.scrubber, log: d.log.Named("admin")})
	d.metrics.knowMethods(d.grpc)
	d.health = observability.Register(d.grpc)
	if d.cfg.HTTPListen == "" {
		return nil
	}
	mux := http.NewServeMux()
	api := httpapi.New(d.served, d.log.Named("http"))
	mux.Handle("/blobs/", d.metrics.instrument("blobs", api))
	mux.Handle("/artifacts/", d.metrics.instrument("artifacts", api))
	mux.Handle("/metrics", observability.MetricsHandler(d.metrics.reg))
	if d.cfg.GitDir != "" {
		git, err := gitserver.New(d.cfg.GitDir, GitPrefix, d.log.Named("git"))
		if err != nil {
			return err
		}
		mux.Handle(GitPrefix+"/", d.metrics.instrument("git", git))
	}
	lis, err = net.Listen("tcp", d.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	d.httpLis = lis
	d.addrs.HTTP = lis.Addr().String()
	d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	if d.cfg.TLS != nil {
		cfg := d.cfg.TLS.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		d.httpLis = tls.NewListener(d.httpLis, cfg)
	}
	return nil
}

func (d *Daemon) closeListeners() {
	for _, lis := range []net.Listener{d.grpcLis, d.httpLis} {
		if lis != nil {
			lis.Close()
		}
	}
}

// Addrs returns the bound addresses.
func (d *Daemon) Addrs() addrfile.Addrs { return d.addrs }

// Serve serves until ctx ends or a listener fails, then shuts down in
// order: stop accepting, let in-flight requests finish (for at most
// ShutdownTimeout), stop scrubbing, flush access times, close the store
// and remove the address file, which no longer tells the truth. It
// returns the listener's error, if that is what ended it.
func (d *Daemon) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- d.grpc.Serve(d.grpcLis) }()
	if d.http != nil {
		go func() { errc <- d.http.Serve(d.httpLis) }()
	}
	scrubCtx, stopScrubs := context.WithCancel(ctx)
	scrubsDone := make(chan struct{})
	go func() {
		defer close(scrubsDone)
		d.scrubber.run(scrubCtx)
	}()
	go d.watchStore(scrubCtx)

	var serveErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case serveErr = <-errc:
		d.log.Error("listener failed; shutting down", "error", serveErr)
	}
	d.health.Shutdown()
	d.stopServers()
	stopScrubs()
	<-scrubsDone
	if err := d.store.Close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("closing the store: %w", err)
	}
	if d.cfg.AddrFile != "" {
		os.Remove(d.cfg.AddrFile)
	}
	d.log.Info("stopped")
	return serveErr
}

// stopServers stops accepting and waits for in-flight requests, cutting
// them off after the shutdown timeout so a stuck download cannot keep the
// daemon from exiting.
func (d *Daemon) stopServers() {
	timeout := d.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if d.http != nil {
		if err := d.http.Shutdown(ctx); err != nil {
			d.log.Warn("HTTP requests still running at the shutdown timeout; closing them", "error", err)
			d.http.Close()
		}
	}
	stopped := make(chan struct{})
	go func() {
		d.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		d.log.Warn("gRPC calls still running at the shutdown timeout; cancelling them")
		d.grpc.Stop()
		<-stopped
	}
}

// storeCheckInterval is how often the health service looks at the store.
const storeCheckInterval = 5 * time.Second

// watchStore keeps the health service's answer in step with the store:
// NOT_SERVING while the store says it cannot be used (its index cannot be
// written), SERVING again once it can, until ctx ends.
func (d *Daemon) watchStore(ctx context.Context) {
	t := d.cfg.Clock.NewTicker(storeCheckInterval)
	defer t.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		err := d.store.Err()
		switch {
		case err != nil && last == nil:
			d.log.Error("the store cannot be used; health checks answer NOT_SERVING", "error", err)
		case err == nil && last != nil:
			d.log.Info("the store can be used again; health checks answer SERVING")
		}
		if (err == nil) != (last == nil) && ctx.Err() == nil {
			d.health.SetServing(err == nil)
		}
		last = err
	}
}
