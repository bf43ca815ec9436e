// Command worker runs build steps for a distbuild controller; see package
// distbuild/worker (the session with the controller), distbuild/worker/step
// (running a step) and `worker --help`.
package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"distbuild/artifactcache"
	"distbuild/internal/addrfile"
	"distbuild/internal/bytesize"
	"distbuild/internal/config"
	"distbuild/internal/credentials"
	"distbuild/internal/observability"
	"distbuild/internal/tlsflags"
	"distbuild/internal/version"
	"distbuild/manifestsig"
	"distbuild/worker"
	"distbuild/worker/cache"
	"distbuild/worker/sandbox"
	"distbuild/worker/step"
)

const about = `worker: runs build steps for a distbuild controller.

Usage:
  worker --work-dir DIR [flags]   run steps for the controller
  worker key --work-dir DIR       print the worker's public key

The worker dials the controller (it needs no inbound port), registers its
slots, architecture and tags, and runs the steps it is given: it fetches
sources through git mirrors in DIR/git, stages dependency artifacts from the
artifact cache (keeping a local copy by digest in DIR/blobs), runs the build
commands and uploads the results. With --sandbox=bwrap (the default),
staging-mode steps run with their staged dependencies as the root file
system and no network; bootstrap-mode steps see the host's tools read-only,
also without network. --sandbox=none runs everything directly on the host.
It reconnects with backoff when the controller goes away; SIGTERM or SIGINT
cancels running steps and stops it.

A step fails as a setup failure, which the controller retries on another
worker, when anything but its build commands goes wrong: a source fetch or
artifact transfer that makes no progress for --transfer-stall-timeout (an
artifact cache that cannot be reached, such as a trove restarting, is
waited for that long), a command that writes no output for
--stall-timeout, the step's own timeout (set by the controller), a full
disk (also a build command failing with less than --min-free-space left).
A build command exiting non-zero is otherwise a build failure, not retried.
Each step's log is stored in the cache; one longer than --log-limit keeps
its first and last halves, with a line saying how much was cut between
them. The artifacts a worker stages are kept in WORK_DIR/blobs, so the
next step needing them does not download them again, and kept unpacked,
once each, in WORK_DIR/blobs/trees, so that staging links their files into
place instead of unpacking them again; blobs and trees together take up to
--blob-cache-size, beyond which the least recently used go (never a tree a
running step holds). Staged files are shared with those trees, so builds
must not be able to change them: bubblewrap's sandbox sees them read-only;
with --sandbox=none the worker mounts each staging area read-only when it
runs as root, and otherwise unpacks afresh for each step. A system's root
is an overlay over the linked trees (when the worker may mount), so that
its integration commands change only the step's own copy.

With --metrics-listen (off by default; port 0 picks one) it serves
Prometheus metrics at /metrics: jobs by phase, phase durations, bytes
fetched and uploaded, the local blob cache's size and hits. --addr-file
then receives the chosen address as JSON {"metrics":"HOST:PORT"} once it
listens.

"worker key" prints the worker's ed25519 public key, creating its signing
key (WORK_DIR/worker.key, or --key-file) on first use. The worker signs the
manifest of every artifact it uploads with that key; register the key with
the worker, 'controller worker add NAME --public-key KEY', so that a trove
run with --require-auth accepts the worker's artifacts.

Flags:
`

// archOf maps Go's architecture names onto the definitions format's.
var archOf = map[string]string{"amd64": "x86_64", "386": "x86_32", "arm64": "armv8l64", "ppc64": "ppc64"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		version.Print(os.Stdout, "worker")
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "key" {
		os.Exit(printKey(os.Args[2:], os.Stdout, os.Stderr))
	}
	host, _ := os.Hostname()
	os.Exit(run(os.Args[1:], os.Stderr, host, archOf[runtime.GOARCH]))
}

// keyFile is where a worker's signing key lives unless --key-file says.
func keyFile(workDir, flag string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(workDir, "worker.key")
}

// printKey implements `worker key`: it prints the worker's public key
// (creating the key on first use), for `controller worker add --public-key`.
func printKey(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("worker key", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	workDir := fs.String("work-dir", "", "the worker's work directory, where its key is kept")
	file := fs.String("key-file", "", "the key file (default WORK_DIR/worker.key)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: worker key --work-dir DIR\n\nPrints the worker's ed25519 public key, creating the key on first use, for\n'controller worker add NAME --public-key KEY'.\n\nFlags:\n"+fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil || (*workDir == "" && *file == "") {
		if err == pflag.ErrHelp {
			return 0
		}
		fs.Usage()
		return 2
	}
	if *workDir != "" {
		if err := os.MkdirAll(*workDir, 0o700); err != nil {
			fmt.Fprintf(stderr, "worker key: %v\n", err)
			return 1
		}
	}
	key, err := manifestsig.LoadOrCreateKey(keyFile(*workDir, *file))
	if err != nil {
		fmt.Fprintf(stderr, "worker key: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, manifestsig.PublicKeyText(key))
	return 0
}

// missingFlags says which settings the worker cannot run without are
// missing: --work-dir has no default; --name and --arch have one unless
// the host name or this machine's architecture cannot be known, or the
// flag was given empty.
func missingFlags(fs *pflag.FlagSet, workDir, name, arch string) []string {
	var missing []string
	if workDir == "" {
		missing = append(missing, "--work-dir DIR is required: the directory for build directories, git mirrors and cached artifacts")
	}
	for _, f := range []struct{ flag, value, noDefault string }{
		{"name", name, "the host name could not be read to default to"},
		{"arch", arch, runtime.GOARCH + " machines have no default architecture name"},
	} {
		switch {
		case f.value != "":
		case fs.Changed(f.flag):
			missing = append(missing, "--"+f.flag+" cannot be empty")
		default:
			missing = append(missing, "--"+f.flag+" is required: "+f.noDefault)
		}
	}
	return missing
}

// run runs the worker with the arguments after the program name. host and
// arch are the defaults of --name and --arch: this machine's host name and
// architecture, "" when they cannot be known.
func run(args []string, stderr io.Writer, host, arch string) int {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, about+fs.FlagUsages()) }
	controllerAddr := fs.String("controller", "127.0.0.1:7877", "gRPC address of the controller's listener for workers (its --worker-listen)")
	cacheAddr := fs.String("cache", "127.0.0.1:7070", "gRPC address of the trove's artifact cache")
	name := fs.String("name", host, "the worker's unique name")
	slots := fs.Int("slots", 1, "how many steps to run at once")
	archFlag := fs.String("arch", arch, "architecture the worker builds for, as the definitions name it")
	tags := fs.StringArray("tag", nil, "key=value property steps can be matched against (repeatable)")
	workDir := fs.String("work-dir", "", "directory for build directories, git mirrors and cached artifacts (required)")
	mode := fs.String("sandbox", "bwrap", "how build commands are isolated: bwrap or none")
	maxJobs := fs.Int("max-jobs", runtime.NumCPU(), "make parallelism (MAKEFLAGS=-jN) for chunks that do not set max-jobs")
	allowSetuid := fs.Bool("allow-setuid", false, "let artifacts staged or assembled into systems contain setuid and setgid programs (real systems need some)")
	keep := fs.Bool("keep-build-dirs", false, "keep each step's build directory after it ends, for debugging")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	tokenFile := fs.String("token-file", "", "file holding the worker's token (from 'controller worker add'), sent to the controller and the cache")
	signingKey := fs.String("key-file", "", "the worker's ed25519 signing key, created on first use (default WORK_DIR/worker.key)")
	var controllerTLS, cacheTLS tlsflags.Client
	controllerTLS.Register(fs, "", "the controller")
	cacheTLS.Register(fs, "cache-", "the artifact cache")
	stall := fs.Duration("stall-timeout", 30*time.Minute, "stop a build command that writes no output for this long, and retry the step elsewhere (0: never)")
	drainTimeout := fs.Duration("drain-timeout", 30*time.Minute, "on SIGTERM or SIGINT, how long to let running steps finish (taking no new ones) before cancelling them; a second signal stops at once")
	transferStall := fs.Duration("transfer-stall-timeout", 10*time.Minute, "stop a source fetch or artifact transfer that makes no progress for this long, and retry the step elsewhere (0: never)")
	logLimit := bytesize.Size(64 << 20)
	fs.Var(&logLimit, "log-limit", "largest step log stored: a longer one keeps its first and last halves, marked where it was cut (0: no limit)")
	minFree := bytesize.Size(128 << 20)
	fs.Var(&minFree, "min-free-space", "a build command that fails with less than this free in the work directory's file system is taken to have run out of space: a setup failure, retried on another worker (0: never)")
	metricsListen := fs.String("metrics-listen", "", `HTTP listen address for Prometheus metrics at /metrics (port 0 picks one; "" serves none)`)
	addrFile := fs.String("addr-file", "", `once listening, write the metrics address here as JSON {"metrics":ADDR} (removed on a clean exit)`)
	blobCache := bytesize.Size(50 << 30)
	fs.Var(&blobCache, "blob-cache-size", "largest size of the local copies of staged artifacts and their unpacked trees (WORK_DIR/blobs); beyond it the least recently used are deleted (0: no limit)")
	if code, done := config.ParseCommandLine(fs, args, "worker", os.Stdout, stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "worker: unexpected argument %q: the worker takes only flags (see worker --help)\n", fs.Arg(0))
		return 2
	}
	if missing := missingFlags(fs, *workDir, *name, *archFlag); len(missing) > 0 {
		fmt.Fprintf(stderr, "worker: %s (see worker --help)\n", strings.Join(missing, "; "))
		return 2
	}
	if *stall < 0 || *transferStall < 0 {
		fmt.Fprintln(stderr, "worker: --stall-timeout and --transfer-stall-timeout cannot be negative")
		return 2
	}
	tagMap := map[string]string{}
	for _, t := range *tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "worker: --tag %q: want key=value\n", t)
			return 2
		}
		tagMap[k] = v
	}
	sb, err := sandbox.ParseMode(*mode)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	if err := sandbox.Available(sb); err != nil {
		fmt.Fprintf(stderr, "worker: --sandbox=%s is not usable here: %v (install bubblewrap, or use --sandbox=none)\n", *mode, err)
		return 1
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		fmt.Fprintf(stderr, "worker: unknown --log-level %q\n", *logLevel)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "worker." + *name, Level: level, Output: stderr})

	key, err := manifestsig.LoadOrCreateKey(keyFile(*workDir, *signingKey))
	if err != nil {
		log.Error("cannot load the signing key", "error", err)
		return 1
	}
	controllerOpts, err := credentials.DialOptions(controllerTLS, *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "worker: the controller's credentials (--tls-*, --token-file): %v\n", err)
		return 2
	}
	cacheOpts, err := credentials.DialOptions(cacheTLS, *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "worker: the cache's credentials (--cache-tls-*, --token-file): %v\n", err)
		return 2
	}
	cacheOpts = append(cacheOpts, cache.DialOptions()...)
	client, err := artifactcache.Dial(*cacheAddr, cacheOpts...)
	if err != nil {
		log.Error("cannot reach the artifact cache", "address", *cacheAddr, "error", err)
		return 1
	}
	defer client.Close()
	conn, err := grpc.NewClient(*controllerAddr, append(controllerOpts,
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	)...)
	if err != nil {
		log.Error("bad controller address", "address", *controllerAddr, "error", err)
		return 2
	}
	defer conn.Close()
	// Staged artifacts come through a local copy of what was downloaded
	// before (WORK_DIR/blobs); everything else goes straight to the trove.
	reg := observability.NewRegistry()
	blobs, err := cache.NewLocal(filepath.Join(*workDir, "blobs"), int64(blobCache), cache.NewMetered(client, reg), log.Named("blobs"))
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	cache.RegisterLocalMetrics(reg, blobs)
	runner, err := step.New(step.Config{
		Worker: *name, SigningKey: key, WorkDir: *workDir, Sandbox: sb, Cache: blobs,
		MaxJobs: *maxJobs, KeepBuildDirs: *keep, AllowSetuid: *allowSetuid, Logger: log,
		StallTimeout: *stall, TransferStallTimeout: *transferStall, LogLimit: int64(logLimit),
		MinFreeBytes: int64(minFree),
	})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	w, err := worker.New(worker.Config{
		Name: *name, Slots: *slots, Arch: *archFlag, Tags: tagMap, PublicKey: key.Public().(ed25519.PublicKey),
		Conn: conn, Runner: runner, Logger: log, Metrics: reg,
	})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go drainOnSignal(w, *drainTimeout, stop, log)
	if *metricsListen != "" {
		lis, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			log.Error("cannot listen for metrics", "address", *metricsListen, "error", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", observability.MetricsHandler(reg))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
		go srv.Serve(lis)
		defer srv.Close()
		log.Info("serving metrics", "address", lis.Addr().String())
		if *addrFile != "" {
			if err := addrfile.Write(*addrFile, addrfile.Addrs{Metrics: lis.Addr().String()}); err != nil {
				log.Error("cannot write the address file", "error", err)
				return 1
			}
			defer os.Remove(*addrFile)
		}
	}
	log.Info("starting", "controller", *controllerAddr, "cache", *cacheAddr, "slots", *slots, "arch", *archFlag, "sandbox", *mode)
	if err := w.Run(ctx); err != nil {
		log.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

// drainOnSignal makes the first SIGTERM or SIGINT drain the worker: it
// takes no new jobs and stops once the ones it holds are finished and
// reported, or after timeout; a second signal stops it at once. Running
// steps are then cancelled, as they always were: a step cancelled on a
// stopping worker runs again elsewhere.
func drainOnSignal(w *worker.Worker, timeout time.Duration, stop func(), log hclog.Logger) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	sig := <-signals
	log.Info("draining before stopping", "signal", sig.String(), "timeout", timeout)
	w.Drain()
	select {
	case <-w.Drained():
		log.Info("drained: every job finished and reported")
	case <-time.After(timeout):
		log.Warn("drain timeout: cancelling the steps still running", "timeout", timeout)
	case sig := <-signals:
		log.Warn("stopping at once", "signal", sig.String())
	}
	stop()
}
