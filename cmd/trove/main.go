// Command trove runs the build farm's shared artifact cache and git server,
// or checks a cache directory offline. See `trove --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"distbuild/artifactcache/daemon"
	"distbuild/artifactcache/service"
	"distbuild/artifactcache/store"
	"distbuild/auth"
	"distbuild/bytesize"
	"distbuild/tlsflags"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
)

const usage = `trove: the build farm's shared artifact cache and git server.

Usage:
  trove serve --dir DIR [flags]   serve the cache (and git repositories)
  trove scrub --dir DIR           check a cache directory offline and report
  trove help                      show this help

"trove serve" serves the ArtifactCacheService over gRPC on --listen, and a
read-only HTTP API on --http-listen:
  GET /blobs/sha256/<hash>      a blob's content (Range and ETag supported)
  GET /artifacts/<cache-key>    a manifest as JSON
  /git/<repo>.git               the bare repositories in --git-dir, for
                                git clone/fetch (pushes are refused)
It logs "listening grpc=ADDR http=ADDR" once it accepts connections. With
port 0 the system picks free ports; --addr-file then tells which, as JSON
{"grpc":"127.0.0.1:NNNN","http":"127.0.0.1:MMMM"} written atomically once
listening, and removed again on a clean exit. With --require-auth and the
controller's --registry file, only registered workers may upload (and each
manifest must carry a valid signature by the uploading worker's registered
key), and only registered workers and users may read over gRPC; the HTTP API
stays read-only and open. --tls-cert and --tls-key serve both listeners
over TLS; --tls-client-ca also requires client certificates. SIGTERM or SIGINT stops it
gracefully: no new requests, in-flight ones finish (up to
--shutdown-timeout), access times are flushed and the index closed.

"trove scrub" re-hashes every blob in a directory no trove is serving,
moves corrupt ones to DIR/quarantine and drops the manifests using them
(their steps will be rebuilt). Exit status: 0 all blobs intact, 1 the
scrub could not run, 3 corrupt blobs were found and quarantined.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "scrub":
		return scrub(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "trove: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func serve(args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("trove serve", pflag.ContinueOnError)
	cfg := daemon.Config{}
	maxSize := bytesize.Size(50 << 30)
	fs.StringVar(&cfg.Dir, "dir", "", "store directory (created if missing; required)")
	fs.StringVar(&cfg.GRPCListen, "listen", "127.0.0.1:7070", "gRPC listen address (port 0 picks a free port)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:7080", `read-only HTTP and git listen address ("" turns HTTP off)`)
	fs.StringVar(&cfg.GitDir, "git-dir", "", "directory of bare git repositories to serve under /git/ (default none)")
	fs.Var(&maxSize, "max-size", "size limit of the cache; least recently used artifacts are evicted to stay under it (e.g. 512MiB, 50GiB)")
	fs.DurationVar(&cfg.ScrubInterval, "scrub-interval", 24*time.Hour, "how often to re-hash every blob (0 turns periodic scrubs off)")
	fs.DurationVar(&cfg.AccessFlushInterval, "access-flush-interval", store.DefaultAccessFlushInterval, "how often last-access times are written to the index")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may run after SIGTERM")
	fs.DurationVar(&cfg.UploadIdleTimeout, "upload-idle-timeout", service.DefaultUploadIdleTimeout, "end an upload through which no content arrives for this long, releasing the room it held")
	fs.StringVar(&cfg.AddrFile, "addr-file", "", "write the actual listen addresses here as JSON once listening")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	var serverTLS tlsflags.Server
	serverTLS.Register(fs)
	requireAuth := fs.Bool("require-auth", false, "gRPC: only registered workers may upload (with manifests signed by their registered keys), only registered workers and users may read")
	registry := fs.String("registry", "", "the registry of workers and users written by 'controller worker add' (required with --require-auth)")
	if code, done := parse(fs, args, stderr, "serve"); done {
		return code
	}
	if cfg.Dir == "" {
		fmt.Fprintln(stderr, "trove serve: --dir is required")
		return 2
	}
	if cfg.UploadIdleTimeout <= 0 {
		fmt.Fprintln(stderr, "trove serve: --upload-idle-timeout must be positive")
		return 2
	}
	cfg.MaxSizeBytes = int64(maxSize)
	if cfg.MaxSizeBytes <= 0 {
		fmt.Fprintln(stderr, "trove serve: --max-size must be positive")
		return 2
	}
	logger, err := newLogger(*logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "trove serve: %v\n", err)
		return 2
	}
	cfg.Logger = logger
	if cfg.TLS, err = serverTLS.Config(); err != nil {
		fmt.Fprintf(stderr, "trove serve: %v\n", err)
		return 2
	}
	if *requireAuth {
		a, err := auth.NewAuthenticator(*registry)
		if err != nil {
			fmt.Fprintf(stderr, "trove serve: --require-auth needs --registry: %v\n", err)
			return 2
		}
		cfg.Verifier = auth.ManifestVerifier{Auth: a}
		cfg.ServerOptions = []grpc.ServerOption{
			grpc.ChainUnaryInterceptor(a.UnaryInterceptor(auth.CachePolicy, logger.Named("auth"))),
			grpc.ChainStreamInterceptor(a.StreamInterceptor(auth.CachePolicy, logger.Named("auth"))),
		}
		logger.Info("authentication required", "registry", *registry)
	}

	// Signals are caught from before the store opens, so none can kill
	// the daemon without a clean shutdown.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := daemon.Start(cfg)
	if err != nil {
		cfg.Logger.Error("cannot start", "error", err)
		return 1
	}
	if err := d.Serve(ctx); err != nil {
		cfg.Logger.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

func scrub(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("trove scrub", pflag.ContinueOnError)
	dir := fs.String("dir", "", "store directory to check (required; no trove may be serving it)")
	logLevel := fs.String("log-level", "warn", "log level: trace, debug, info, warn or error")
	if code, done := parse(fs, args, stderr, "scrub"); done {
		return code
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "trove scrub: --dir is required")
		return 2
	}
	logger, err := newLogger(*logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "trove scrub: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	report, err := daemon.Scrub(ctx, *dir, logger, stdout)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "trove scrub: %v\n", err)
		return 1
	case len(report.Corrupt) > 0:
		return 3
	default:
		return 0
	}
}

// parse parses flags, printing help or errors; done means exit with code.
func parse(fs *pflag.FlagSet, args []string, stderr io.Writer, name string) (code int, done bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nFlags of trove %s:\n%s", usage, name, fs.FlagUsages())
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return 0, true
	case err != nil:
		fmt.Fprintf(stderr, "trove %s: %v (see trove %s --help)\n", name, err, name)
		return 2, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "trove %s: unexpected arguments %q\n", name, fs.Args())
		return 2, true
	}
	return 0, false
}

func newLogger(level string, out io.Writer) (hclog.Logger, error) {
	l := hclog.LevelFromString(level)
	if l == hclog.NoLevel {
		return nil, fmt.Errorf("unknown log level %q", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "trove", Level: l, Output: out}), nil
}
