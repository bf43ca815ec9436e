package initiator

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc/status"

	"distbuild/notify"
	pb "distbuild/proto/distbuild/v1"
)

// DefaultController is where the controller listens unless told otherwise.
const DefaultController = "127.0.0.1:7878"

const buildAbout = `Builds a system of the definitions checkout you are in on the distbuild farm.
The controller builds the commit at HEAD, fetched from the URL of the
checkout's remote (--remote) or from --repo, so commit your changes and
push them to the repository behind that URL first (the command refuses
otherwise). A trove refuses pushes: when the URL is a trove's, push to the
upstream repository it serves or mirrors. Every step's log is written to
build-step-<name>.log in the current directory as it arrives. Ctrl-C
cancels the build; exit status 0 means every step succeeded.

--check proves reproducibility: once the system is built, each chunk (or
each step named by --step) is built again on a worker other than the one
that made its cached artifact, and the two are compared file by file
(paths, types, modes, link targets, content digests). The cached artifact
is never replaced. Every difference is printed, the check's log is
build-step-<name>.check.log, and the exit status is non-zero unless every
checked step is reproducible. The results stay recorded per cache key:
'initiator status' shows them.`

func controllerFlag(fs interface {
	StringVar(*string, string, string, string)
}) *string {
	addr := envOr("DISTBUILD_CONTROLLER", DefaultController)
	fs.StringVar(&addr, "controller", addr, "controller address host:port (default from $DISTBUILD_CONTROLLER)")
	return &addr
}

func runBuild(env *Env, args []string) int {
	fs := newFlags(env, "build", "[flags] SYSTEM_MORPH", buildAbout)
	controller := controllerFlag(fs)
	repo := fs.String("repo", "", "URL the controller fetches the definitions from (default: the remote's URL)")
	remote := fs.String("remote", "origin", "git remote whose URL is used when --repo is not given")
	partial := fs.StringArray("partial", nil, "build only this chunk or stratum and its dependencies (repeatable)")
	detach := fs.Bool("detach", false, "submit the build, print its id and exit; it keeps running")
	keepGoing := fs.Bool("keep-going", false, "after a step fails, still build every step that does not depend on it")
	workerTags := fs.StringToString("worker-tag", nil, "run steps only on workers registered with this key=value tag (repeatable)")
	notifyTo := fs.StringArray("notify", nil, "e-mail this address when the build ends, with the failing step and its last log lines (repeatable; the controller needs --smtp-server)")
	check := fs.Bool("check", false, "after building, build steps again on another worker and compare (see above); implies --keep-going")
	checkSteps := fs.StringArray("step", nil, "with --check: check this step rather than every chunk (repeatable)")
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitUsage
	}
	if len(*checkSteps) > 0 && !*check {
		fmt.Fprintln(env.Stderr, "initiator build: --step names the steps --check checks; give --check too")
		return ExitUsage
	}
	for _, a := range *notifyTo {
		if err := notify.CheckAddress(a); err != nil {
			fmt.Fprintf(env.Stderr, "initiator build: --notify: %v\n", err)
			return ExitUsage
		}
	}
	root, morph, err := findDefinitions(env.Dir, fs.Arg(0))
	if err != nil {
		return fail(env, "build", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	co, err := inspectCheckout(ctx, root, *remote, *repo)
	if err != nil {
		return fail(env, "build", err)
	}
	client, err := dialController(*controller)
	if err != nil {
		return fail(env, "build", err)
	}
	defer client.Close()
	stream, err := client.Build(ctx)
	if err != nil {
		return fail(env, "build", fmt.Errorf("cannot reach the controller at %s: %s", *controller, status.Convert(err).Message()))
	}
	start := &pb.StartBuild{RepoUrl: co.repoURL, Commit: co.commit, MorphologyPath: morph, Components: *partial,
		Detach: *detach, KeepGoing: *keepGoing || *check, WorkerTags: *workerTags, NotifyEmails: *notifyTo,
		Check: *check, CheckSteps: *checkSteps}
	if err := stream.Send(&pb.BuildRequest{Request: &pb.BuildRequest_Start{Start: start}}); err != nil {
		return fail(env, "build", fmt.Errorf("sending the build to %s: %w", *controller, err))
	}

	events := &buildEvents{ctx: ctx, env: env, client: client, stream: stream}
	interrupts := make(chan os.Signal, 2)
	signal.Notify(interrupts, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(interrupts)
	go func() {
		<-interrupts
		fmt.Fprintln(env.Stderr, "\ninitiator: cancelling the build (press Ctrl-C again to leave it to the controller's grace period)")
		events.cancel()
		<-interrupts
		stop()
	}()

	var stopAtAccepted func(*pb.BuildEvent) bool
	if *detach {
		stopAtAccepted = func(ev *pb.BuildEvent) bool {
			if a := ev.GetAccepted(); a != nil {
				fmt.Fprintf(env.Stdout, "%s\n", a.GetBuildId())
				return true
			}
			return false
		}
	}
	watchEnv := env
	if *detach {
		// Scripts read the id from stdout; what the watcher says goes to
		// stderr.
		watchEnv = &Env{Dir: env.Dir, Stdout: env.Stderr, Stderr: env.Stderr}
	}
	tty := isTerminal(watchEnv.Stdout)
	w := newWatcher(watchEnv, tty)
	defer w.close()
	ticks, stopTicks := redrawTicks(tty)
	defer stopTicks()
	return followEvents(ctx, env, "build", client, w, events.next, stopAtAccepted, ticks)
}

// isTerminal reports whether w is a character device (a terminal), where
// progress can be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// elapsed formats a duration for progress lines.
func elapsed(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
