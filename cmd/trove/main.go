// Command trove runs the build farm's shared artifact cache and git server
// (trove serve), or checks a cache's blobs (trove scrub), offline or
// through a running trove. See `trove --help`.
//
// trove serve serves the ArtifactCacheService (and CacheAdminService) over
// gRPC on --listen, and a read-only HTTP API on --http-listen:
//
//	GET /blobs/sha256/<hash>      a blob's content (Range and ETag supported)
//	GET /artifacts/<cache-key>    a manifest as JSON
//	/git/<repo>.git               the bare repositories in --git-dir, for
//	                              git clone/fetch (pushes are refused)
//
// It logs "listening grpc=ADDR http=ADDR" once it accepts connections.
// SIGTERM or SIGINT stops it gracefully: no new requests, in-flight ones
// finish (up to --shutdown-timeout), access times are flushed and the
// index closed.
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

	"distbuild/artifactcache"
	"distbuild/artifactcache/service"
	"distbuild/artifactcache/store"
	"distbuild/auth"
	"distbuild/internal/bytesize"
	"distbuild/internal/config"
	"distbuild/internal/exposure"
	"distbuild/internal/tlsflags"
	"distbuild/trove"

	"distbuild/internal/version"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
)

const overview = `trove: the build farm's shared artifact cache and git server.

Usage:
  trove serve --dir DIR [flags]          serve the artifact cache and git repositories
  trove scrub --dir DIR | --trove ADDR   re-hash every blob, quarantining corrupt ones
  trove help                             show this overview

Run "trove serve --help" or "trove scrub --help" for a command's flags.
`

// Each command's help: its usage line and one sentence; its flags follow.
const (
	serveHelp = `Usage: trove serve --dir DIR [flags]

Serves the artifact cache over gRPC on --listen, and a read-only HTTP API
(/blobs/sha256/HASH, /artifacts/CACHE-KEY) and the git repositories of
--git-dir (/git/REPO.git) on --http-listen, until SIGTERM or SIGINT.
`
	scrubHelp = `Usage: trove scrub --dir DIR | --trove ADDR [flags]

Re-hashes every blob, moving corrupt ones to DIR/quarantine and dropping
the manifests using them (their steps will be rebuilt): --dir checks a
directory no trove is serving, --trove has a running trove scrub its store.
Exit status: 0 all blobs intact, 1 the scrub could not run, 3 corrupt blobs
were found and quarantined.
`
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, overview)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "scrub":
		return scrub(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, overview)
		return 0
	case "version", "--version":
		version.Print(stdout, "trove")
		return 0
	default:
		fmt.Fprintf(stderr, "trove: unknown command %q\n\n%s", args[0], overview)
		return 2
	}
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("trove serve", pflag.ContinueOnError)
	config.Register(fs)
	cfg := trove.Config{}
	maxSize := bytesize.Size(50 << 30)
	fs.StringVar(&cfg.Dir, "dir", "", "store directory (created if missing; required)")
	fs.StringVar(&cfg.GRPCListen, "listen", "127.0.0.1:7070", "gRPC listen address (port 0 picks a free port)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:7080", `read-only HTTP API and git listen address ("" turns HTTP off)`)
	fs.StringVar(&cfg.GitDir, "git-dir", "", "directory of bare git repositories to serve under /git/ (default none)")
	var remote remoteFlags
	remote.register(fs)
	fs.Var(&maxSize, "max-size", "size limit of the cache; least recently used artifacts are evicted to stay under it (e.g. 512MiB, 50GiB)")
	fs.DurationVar(&cfg.ScrubInterval, "scrub-interval", 24*time.Hour, "how often to re-hash every blob (0 turns periodic scrubs off)")
	fs.DurationVar(&cfg.AccessFlushInterval, "access-flush-interval", store.DefaultAccessFlushInterval, "how often last-access times are written to the index")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may run after SIGTERM")
	fs.DurationVar(&cfg.UploadIdleTimeout, "upload-idle-timeout", service.DefaultUploadIdleTimeout, "end an upload through which no content arrives for this long, releasing the room it held")
	fs.StringVar(&cfg.AddrFile, "addr-file", "", `once listening, write the actual addresses here as JSON {"grpc":ADDR,"http":ADDR} (atomically; removed on a clean exit), e.g. to learn the ports chosen for port 0`)
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	var serverTLS tlsflags.Server
	serverTLS.Register(fs)
	requireAuth := fs.Bool("require-auth", false, "gRPC: only registered workers may upload (with manifests signed by their registered keys), only registered workers and users may read, only registered users may scrub on demand; the HTTP API stays read-only and open")
	registry := fs.String("registry", "", "the registry of workers and users written by 'controller worker add' (required with --require-auth)")
	if code, done := parse(fs, args, stdout, stderr, "serve", serveHelp); done {
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
	if err := remote.configure(&cfg, logger); err != nil {
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
			grpc.ChainUnaryInterceptor(a.UnaryInterceptor(trove.AuthPolicy, logger.Named("auth"))),
			grpc.ChainStreamInterceptor(a.StreamInterceptor(trove.AuthPolicy, logger.Named("auth"))),
		}
		logger.Info("authentication required", "registry", *registry)
	}

	// Signals are caught from before the store opens, so none can kill
	// the daemon without a clean shutdown.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := trove.Start(cfg)
	if err != nil {
		cfg.Logger.Error("cannot start", "error", err)
		return 1
	}
	// The HTTP API is read-only by design; the gRPC API takes uploads.
	if w := exposure.Warning(d.Addrs().GRPC, cfg.TLS != nil, *requireAuth); w != "" {
		cfg.Logger.Warn("the artifact cache is exposed", "warning", w)
	}
	if err := d.Serve(ctx); err != nil {
		cfg.Logger.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

func scrub(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("trove scrub", pflag.ContinueOnError)
	dir := fs.String("dir", "", "store directory to check offline (no trove may be serving it)")
	addr := fs.String("trove", "", "gRPC address of a running trove whose store to scrub (under --require-auth, with a user's --token-file)")
	tokenFile := fs.String("token-file", "", "with --trove: file holding a user's token (from 'controller user add')")
	var clientTLS tlsflags.Client
	clientTLS.Register(fs, "", "the trove")
	logLevel := fs.String("log-level", "warn", "log level: trace, debug, info, warn or error")
	if code, done := parse(fs, args, stdout, stderr, "scrub", scrubHelp); done {
		return code
	}
	if (*dir == "") == (*addr == "") {
		fmt.Fprintln(stderr, "trove scrub: give either --dir DIR (a store no trove is serving) or --trove ADDR (a running trove)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var report store.ScrubReport
	var err error
	if *addr != "" {
		report, err = scrubLive(ctx, *addr, *tokenFile, clientTLS, stdout)
	} else {
		if *tokenFile != "" || clientTLS != (tlsflags.Client{}) {
			fmt.Fprintln(stderr, "trove scrub: --token-file and the TLS flags go with --trove, not --dir")
			return 2
		}
		logger, lerr := newLogger(*logLevel, stderr)
		if lerr != nil {
			fmt.Fprintf(stderr, "trove scrub: %v\n", lerr)
			return 2
		}
		report, err = trove.Scrub(ctx, *dir, logger, stdout)
	}
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

// scrubLive has the trove at addr scrub its store, connecting as the
// trove's other clients do.
func scrubLive(ctx context.Context, addr, tokenFile string, clientTLS tlsflags.Client, stdout io.Writer) (store.ScrubReport, error) {
	creds, err := clientTLS.DialOption()
	if err != nil {
		return store.ScrubReport{}, err
	}
	opts := append(artifactcache.DialOptions(), creds)
	if tokenFile != "" {
		token, err := auth.ReadTokenFile(tokenFile)
		if err != nil {
			return store.ScrubReport{}, fmt.Errorf("--token-file: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(token))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return store.ScrubReport{}, fmt.Errorf("--trove %s: %w", addr, err)
	}
	defer conn.Close()
	return trove.ScrubLive(ctx, conn, stdout)
}

// parse parses a command's flags. --help prints the command's help and
// flags to stdout; a mistake is one line on stderr pointing at --help.
// done means exit with code.
func parse(fs *pflag.FlagSet, args []string, stdout, stderr io.Writer, name, help string) (code int, done bool) {
	fs.SetOutput(stderr)
	fs.SortFlags = false // in the order registered: the essential ones first
	fs.Usage = func() {}
	var err error
	if fs.Lookup(config.FlagName) != nil { // only serve takes a --config file
		err = config.Parse(fs, args)
	} else {
		err = fs.Parse(args)
	}
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprintf(stdout, "%s\nFlags:\n%s", help, fs.FlagUsages())
		return 0, true
	case err != nil:
		fmt.Fprintf(stderr, "trove %s: %v (see trove %s --help)\n", name, err, name)
		return 2, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "trove %s: unexpected arguments %q (see trove %s --help)\n", name, fs.Args(), name)
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
