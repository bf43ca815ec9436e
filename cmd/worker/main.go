// Command worker runs build steps for a distbuild controller; see package
// distbuild/worker and `worker --help`.
package main

import (
	"context"
	"fmt"
	"io"
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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"distbuild/artifactcache"
	"distbuild/gitmirror"
	"distbuild/worker"
	"distbuild/worker/sandbox"
)

const about = `worker: runs build steps for a distbuild controller.

Usage: worker --work-dir DIR [flags]

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

Flags:
`

// archOf maps Go's architecture names onto the definitions format's.
var archOf = map[string]string{"amd64": "x86_64", "386": "x86_32", "arm64": "armv8l64", "ppc64": "ppc64"}

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, about+fs.FlagUsages()) }
	host, _ := os.Hostname()
	controllerAddr := fs.String("controller", "127.0.0.1:7878", "gRPC address of the controller")
	cacheAddr := fs.String("cache", "127.0.0.1:7070", "gRPC address of the trove's artifact cache")
	name := fs.String("name", host, "the worker's unique name")
	slots := fs.Int("slots", 1, "how many steps to run at once")
	arch := fs.String("arch", archOf[runtime.GOARCH], "architecture the worker builds for")
	tags := fs.StringArray("tag", nil, "key=value property steps can be matched against (repeatable)")
	workDir := fs.String("work-dir", "", "directory for build directories, git mirrors and cached artifacts (required)")
	mode := fs.String("sandbox", "bwrap", "how build commands are isolated: bwrap or none")
	maxJobs := fs.Int("max-jobs", runtime.NumCPU(), "make parallelism (MAKEFLAGS=-jN) for chunks that do not set max-jobs")
	keep := fs.Bool("keep-build-dirs", false, "keep each step's build directory after it ends, for debugging")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		return 2
	}
	if *workDir == "" || fs.NArg() != 0 || *name == "" || *arch == "" {
		fmt.Fprintln(stderr, "worker: --work-dir, --name and --arch are required and no arguments are taken")
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

	mirrors, err := gitmirror.New(filepath.Join(*workDir, "git"), log.Named("git"))
	if err != nil {
		log.Error("cannot prepare the git mirrors", "error", err)
		return 1
	}
	cache, err := artifactcache.Dial(*cacheAddr)
	if err != nil {
		log.Error("cannot reach the artifact cache", "address", *cacheAddr, "error", err)
		return 1
	}
	defer cache.Close()
	conn, err := grpc.NewClient(*controllerAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		log.Error("bad controller address", "address", *controllerAddr, "error", err)
		return 2
	}
	defer conn.Close()
	w, err := worker.New(worker.Config{
		Name: *name, Slots: *slots, Arch: *arch, Tags: tagMap,
		Conn: conn, WorkDir: *workDir, Sandbox: sb, Cache: cache, Git: mirrors,
		MaxJobs: *maxJobs, KeepBuildDirs: *keep, Logger: log,
	})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting", "controller", *controllerAddr, "cache", *cacheAddr, "slots", *slots, "arch", *arch, "sandbox", *mode)
	if err := w.Run(ctx); err != nil {
		log.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}
