// Command controller runs the build farm's coordinator; see package
// distbuild/controller and `controller --help`.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/artifactcache"
	"distbuild/auth"
	"distbuild/controller"
	"distbuild/definitions"
	"distbuild/gitmirror"
	"distbuild/internal/addrfile"
	"distbuild/internal/config"
	"distbuild/internal/credentials"
	"distbuild/internal/exposure"
	"distbuild/internal/observability"
	"distbuild/internal/tlsflags"
	"distbuild/manifestsig"
	"distbuild/scheduler"
)

const about = `controller: the distbuild farm's coordinator.

Usage: controller [flags]

Initiators submit builds to it over gRPC on --listen (default port 7878),
and workers dial in to it on --worker-listen (default port 7877): two
listeners, so that developers' and build machines' networks can be exposed
and firewalled apart; give both the same address (with a fixed port) to
serve them on one port. For each build it fetches the definitions repository at the
requested commit (keeping mirrors under --state-dir), resolves the graph and
cache keys, asks the artifact cache at --cache what is already built, and
schedules the rest onto connected workers. Repository aliases such as
upstream:zlib map onto --trove-git (e.g. http://trove:7080/git becomes
http://trove:7080/git/upstream/zlib); --repo-alias adds or overrides some.

With --require-auth only registered workers and users get in (tokens from
'controller worker add' and 'controller user add'; see 'controller worker
--help'). With --tls-cert and --tls-key it serves TLS (and with
--tls-client-ca requires client certificates); --cache-tls-ca makes its
connection to the cache use TLS.

Both gRPC listeners also serve gRPC health (grpc.health.v1.Health, open
to anyone even with --require-auth; NOT_SERVING once the controller
stops) and reflection (for grpcurl; registered workers and users only with
--require-auth). --http-listen (default 127.0.0.1:7879) serves a read-only web dashboard
at / (builds, each build's steps, Gantt chart, logs and performance graphs,
workers, the cache), Prometheus metrics at /metrics and a read-only JSON
API: /api/builds, /api/builds/BUILD_ID, /api/builds/BUILD_ID/events
(server-sent events) and /api/workers. It needs no token, so keep it on
loopback or a trusted network.

It logs "listening grpc=ADDR workers=ADDR http=ADDR" once it accepts
connections; with port 0, --addr-file tells which ports were chosen, as
JSON {"grpc":"HOST:PORT","worker":"HOST:PORT","http":"HOST:PORT"}.
SIGTERM or SIGINT stops it.

'controller workers drain NAME' asks a running controller to drain a
worker: it finishes the steps it holds, takes no new ones, and stops.
SIGHUP rereads the registry of workers and users.

--hook, --webhook and --notify-email tell commands, HTTP receivers and
people about farm events: build-started, build-succeeded, build-failed,
build-cancelled, step-failed, step-retried, worker-joined, worker-lost and
missing-input, as one JSON document (see the README). Delivery is at least
once: pending runs are kept in state.db across restarts and retried with
backoff for --notify-retry-for; a receiver may see an event twice (its
"id" tells repeats apart). 'initiator build --notify ADDRESS' mails one
build's outcome.

--scale-command grows and shrinks the farm: it is asked for workers when
steps have waited --scale-up-after with no free slot that could take them,
and told to remove a worker once it has been idle --scale-down-after and
the controller has drained it (see the README for an example with virsh).

It refuses to start on a damaged state database, or on a missing or empty
one where it ran before; 'controller state --help' explains the checks,
backups and repair.

Flags:
`

// healthNotice is how long health watchers have to hear NOT_SERVING
// before the gRPC servers stop.
const healthNotice = 200 * time.Millisecond

// controllerKeyFile holds the controller's ed25519 key, under --state-dir,
// with which it signs attempt grants.
const controllerKeyFile = "controller.key"

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "worker":
			os.Exit(admin(auth.KindWorker, args[1:], os.Stdout, os.Stderr))
		case "user":
			os.Exit(admin(auth.KindUser, args[1:], os.Stdout, os.Stderr))
		case "state":
			os.Exit(stateAdmin(args[1:], os.Stdout, os.Stderr))
		case "workers":
			os.Exit(drainWorker(args[1:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

// troveMetricsURL is where the dashboard reads the trove's metrics: the
// flag's URL, or the trove's HTTP listener that --trove-git names.
func troveMetricsURL(flag, troveGit string) string {
	switch {
	case flag == "none":
		return ""
	case flag != "":
		return flag
	case strings.HasSuffix(strings.TrimSuffix(troveGit, "/"), "/git"):
		return strings.TrimSuffix(strings.TrimSuffix(troveGit, "/"), "/git") + "/metrics"
	}
	return ""
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, about+fs.FlagUsages()) }
	listen := fs.String("listen", "127.0.0.1:7878", "gRPC listen address for initiators (port 0 picks one)")
	workerListen := fs.String("worker-listen", "127.0.0.1:7877", "gRPC listen address for workers (port 0 picks one); the same address and fixed port as --listen serves both on one port")
	httpListen := fs.String("http-listen", "127.0.0.1:7879", `HTTP listen address for the dashboard, /metrics and the read-only JSON API (port 0 picks one; "" turns HTTP off)`)
	stateDir := fs.String("state-dir", "", "directory for the controller's state: builds and their events (state.db) and git mirrors of definitions (required)")
	cacheAddr := fs.String("cache", "127.0.0.1:7070", "gRPC address of the trove's artifact cache")
	troveGit := fs.String("trove-git", "http://127.0.0.1:7080/git", "base URL of the trove's git repositories, for the default repo aliases")
	troveMetrics := fs.String("trove-metrics", "", `URL of the trove's /metrics, which the dashboard's cache page reads (default: --trove-git with /git replaced by /metrics; "none" leaves it out)`)
	aliases := fs.StringArray("repo-alias", nil, "repo alias as prefix=URL-pattern with %s for the name (repeatable)")
	policy := fs.String("policy", "critical-path", "order in which ready steps start: critical-path or fifo")
	requireReproducible := fs.StringArray("require-reproducible", nil, "steps whose names match this pattern (e.g. 'gcc*', path.Match syntax; repeatable) are built again on a second worker and compared before anything depending on them is built; a difference fails the build")
	maxAttempts := fs.Int("max-attempts", 3, "attempts of a step failing for setup reasons before the build fails")
	lease := fs.Duration("worker-lease", 30*time.Second, "how long a worker may stay silent before its jobs are requeued")
	stepTimeout := fs.Duration("step-timeout", 6*time.Hour, "longest a single step may run")
	grace := fs.Duration("disconnect-grace", 30*time.Second, "how long a build outlives its disconnected initiator (unless detached)")
	resumeGrace := fs.Duration("resume-grace", 0, "after a restart, how long steps that were running wait for their workers to reconnect and report them (default: --worker-lease)")
	backupInterval := fs.Duration("state-backup-interval", 10*time.Minute, "how often state.db is backed up into STATE_DIR/backups (the newest 3 are kept; one more at shutdown)")
	addrFile := fs.String("addr-file", "", "write the actual listen address here as JSON once listening")
	var serverTLS tlsflags.Server
	serverTLS.Register(fs)
	var cacheTLS tlsflags.Client
	cacheTLS.Register(fs, "cache-", "the artifact cache")
	cacheTimeout := fs.Duration("cache-timeout", time.Minute, "longest a call to the artifact cache may go unanswered (a trove cut off by the network) before the build needing it fails, naming the cache")
	cacheToken := fs.String("cache-token-file", "", "file holding a token for the artifact cache, when it requires one (a user token from 'controller user add' suffices)")
	requireAuth := fs.Bool("require-auth", false, "accept only registered workers and users (see controller worker --help)")
	registry := fs.String("registry", "", "the registry of workers and users (default STATE_DIR/registry.json)")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	notifyOpts := addNotifyFlags(fs)
	scaleOpts := addScaleFlags(fs)
	if code, done := config.ParseCommandLine(fs, args, "controller", stdout, stderr); done {
		return code
	}
	if *stateDir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "controller: --state-dir is required and no arguments are taken")
		return 2
	}
	pol, ok := scheduler.Policies[*policy]
	if !ok {
		fmt.Fprintf(stderr, "controller: unknown --policy %q (want critical-path or fifo)\n", *policy)
		return 2
	}
	repoAliases := definitions.NewRepoAliases(*troveGit)
	for _, a := range *aliases {
		if err := repoAliases.Set(a); err != nil {
			fmt.Fprintf(stderr, "controller: %v\n", err)
			return 2
		}
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		fmt.Fprintf(stderr, "controller: unknown --log-level %q\n", *logLevel)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "controller", Level: level, Output: stderr})
	notifyCfg, err := notifyOpts.config(log)
	if err != nil {
		fmt.Fprintf(stderr, "controller: %v\n", err)
		return 2
	}
	scaleCfg, err := scaleOpts.config()
	if err != nil {
		fmt.Fprintf(stderr, "controller: %v\n", err)
		return 2
	}

	mirrors, err := gitmirror.New(filepath.Join(*stateDir, "git"), log.Named("git"))
	if err != nil {
		log.Error("cannot prepare the git mirrors", "error", err)
		return 1
	}
	cacheOpts, err := credentials.DialOptions(cacheTLS, *cacheToken)
	if err != nil {
		fmt.Fprintf(stderr, "controller: the cache's credentials (--cache-tls-*, --cache-token-file): %v\n", err)
		return 2
	}
	if *cacheTimeout <= 0 {
		fmt.Fprintln(stderr, "controller: --cache-timeout must be positive")
		return 2
	}
	cacheOpts = append(cacheOpts, grpc.WithChainUnaryInterceptor(cacheDeadline(*cacheAddr, *cacheTimeout)))
	tlsOpts, err := serverTLS.GRPCOptions()
	if err != nil {
		fmt.Fprintf(stderr, "controller: %v\n", err)
		return 2
	}
	tlsCfg, err := serverTLS.Config()
	if err != nil {
		fmt.Fprintf(stderr, "controller: %v\n", err)
		return 2
	}
	cache, err := artifactcache.Dial(*cacheAddr, cacheOpts...)
	if err != nil {
		log.Error("cannot reach the artifact cache", "address", *cacheAddr, "error", err)
		return 1
	}
	defer cache.Close()
	grantKey, err := manifestsig.LoadOrCreateKey(filepath.Join(*stateDir, controllerKeyFile))
	if err != nil {
		log.Error("cannot load the controller's key", "error", err)
		return 1
	}
	var reloadRegistry func() error
	stateErr := make(chan error, 1)
	reg := observability.NewRegistry()
	c, err := controller.New(controller.Config{
		Metrics:             reg,
		Definitions:         controller.GitDefinitions{Mirrors: mirrors},
		Cache:               cache,
		Aliases:             repoAliases,
		Policy:              pol,
		MaxAttempts:         *maxAttempts,
		StepTimeout:         *stepTimeout,
		WorkerLease:         *lease,
		DisconnectGrace:     *grace,
		ResumeGrace:         *resumeGrace,
		GrantKey:            grantKey,
		StateFile:           filepath.Join(*stateDir, "state.db"),
		StateBackupInterval: *backupInterval,
		Notify:              notifyCfg,
		Scale:               scaleCfg,
		DashboardURL:        *notifyOpts.dashboardURL,
		RequireReproducible: *requireReproducible,
		OnStateError: func(err error) {
			select {
			case stateErr <- err:
			default:
			}
		},
		Logger: log,
	})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	defer c.Close()

	opts := controller.ServerOptions()
	opts = append(opts, tlsOpts...)
	if *requireAuth {
		path := *registry
		if path == "" {
			path = filepath.Join(*stateDir, "registry.json")
		}
		a, err := auth.NewAuthenticator(path)
		if err != nil {
			log.Error("--require-auth needs a registry: add workers and users with 'controller worker add'", "error", err)
			return 1
		}
		if changed, err := auth.RecordControllerKey(path, grantKey.Public().(ed25519.PublicKey)); err != nil {
			log.Error("cannot record the controller's key in the registry", "registry", path, "error", err)
			return 1
		} else if changed {
			log.Warn("recorded the controller's key in the registry: copy it to the trove again", "registry", path)
		}
		opts = append(opts,
			grpc.ChainUnaryInterceptor(a.UnaryInterceptor(controller.Policy, log.Named("auth"))),
			grpc.ChainStreamInterceptor(a.StreamInterceptor(controller.Policy, log.Named("auth"))))
		log.Info("authentication required", "registry", path)
		reloadRegistry = a.Reload
	}
	// Initiators and workers get a listener each, so each audience can be
	// exposed (and firewalled) on its own; one address serves both.
	initiators := grpc.NewServer(opts...)
	workers := initiators
	var health []*observability.Health
	if *workerListen == *listen && !strings.HasSuffix(*listen, ":0") {
		c.Register(initiators)
		health = append(health, observability.Register(initiators))
	} else {
		workers = grpc.NewServer(opts...)
		c.RegisterInitiatorServices(initiators)
		c.RegisterWorkerServices(workers)
		health = append(health, observability.Register(initiators), observability.Register(workers))
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("cannot listen", "address", *listen, "error", err)
		return 1
	}
	workerLis := lis
	if workers != initiators {
		if workerLis, err = net.Listen("tcp", *workerListen); err != nil {
			log.Error("cannot listen for workers", "address", *workerListen, "error", err)
			return 1
		}
	}
	addrs := addrfile.Addrs{GRPC: lis.Addr().String(), Worker: workerLis.Addr().String()}
	var httpSrv *http.Server
	var httpLis net.Listener
	if *httpListen != "" {
		if httpLis, err = net.Listen("tcp", *httpListen); err != nil {
			log.Error("cannot listen for HTTP", "address", *httpListen, "error", err)
			return 1
		}
		if tlsCfg != nil {
			cfg := tlsCfg.Clone()
			cfg.NextProtos = []string{"h2", "http/1.1"}
			httpLis = tls.NewListener(httpLis, cfg)
		}
		addrs.HTTP = httpLis.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/metrics", observability.MetricsHandler(reg))
		mux.Handle("/api/", c.APIHandler())
		mux.Handle("/", c.DashboardHandler(controller.DashboardOptions{Logs: cache, TroveMetrics: troveMetricsURL(*troveMetrics, *troveGit)}))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	}
	if *addrFile != "" {
		if err := addrfile.Write(*addrFile, addrs); err != nil {
			log.Error("cannot write the address file", "error", err)
			return 1
		}
		defer os.Remove(*addrFile)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go reloadOnHangUp(ctx, reloadRegistry, log)
	status := 0
	go func() {
		select {
		case <-ctx.Done():
			log.Info("stopping")
		case err := <-stateErr:
			// Nothing more can be promised that would be kept.
			log.Error("stopping: the state database cannot be written", "error", err)
			status = 1
		}
		c.Stop()
		for _, h := range health {
			h.Shutdown()
		}
		// The servers stop at once (their streams last as long as
		// builds and workers do); a moment first lets health watchers
		// hear NOT_SERVING before their connections close.
		time.Sleep(healthNotice)
		if httpSrv != nil {
			httpSrv.Close()
		}
		workers.Stop()
		initiators.Stop()
	}()
	served := make(chan error, 3)
	go func() { served <- initiators.Serve(lis) }()
	if workers != initiators {
		go func() { served <- workers.Serve(workerLis) }()
	}
	if httpSrv != nil {
		go func() {
			if err := httpSrv.Serve(httpLis); err != http.ErrServerClosed {
				served <- err
			}
		}()
	}
	log.Info("listening", "grpc", addrs.GRPC, "workers", addrs.Worker, "http", addrs.HTTP, "cache", *cacheAddr, "policy", pol.Name())
	for _, addr := range []string{addrs.GRPC, addrs.Worker} {
		if w := exposure.Warning(addr, tlsCfg != nil, *requireAuth); w != "" {
			log.Warn("a gRPC listener is exposed", "warning", w)
		}
	}
	if err := <-served; err != nil {
		log.Error("serving failed", "error", err)
		workers.Stop()
		initiators.Stop()
		return 1
	}
	return status
}

// reloadOnHangUp rereads the registry of workers and users on SIGHUP, as
// daemons do: it is reread whenever it changes anyway, but SIGHUP makes
// sure. Nothing else is reloaded: every other setting shapes state that
// would have to be rebuilt.
func reloadOnHangUp(ctx context.Context, reload func() error, log hclog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if reload == nil {
				log.Info("SIGHUP: nothing to reload (no --require-auth)")
				continue
			}
			if err := reload(); err != nil {
				log.Error("SIGHUP: cannot reread the registry", "error", err)
				continue
			}
			log.Info("SIGHUP: reread the registry")
		}
	}
}

// cacheDeadline bounds each call to the artifact cache: a trove cut off by
// the network gives no answer and no error (TCP retransmits for many
// minutes), and a build resolving against it would wait without a word.
// The call fails instead, saying which cache did not answer.
func cacheDeadline(addr string, limit time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		callCtx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		err := invoker(callCtx, method, req, reply, cc, opts...)
		if err != nil && ctx.Err() == nil && callCtx.Err() == context.DeadlineExceeded {
			return status.Errorf(codes.Unavailable, "the artifact cache at %s did not answer within %s (--cache-timeout)", addr, limit)
		}
		return err
	}
}
