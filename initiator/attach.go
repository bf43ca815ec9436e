package initiator

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

const attachAbout = `Re-joins a build (from any directory or machine) and follows it like build
does: its events are replayed from the start (or from sequence number
--from), then new ones are shown as they happen. Each step's log is written
to build-step-<name>.log in the current directory. Step output is relayed
only live, so when a step's attempt ends its part of the file is replaced by
the attempt's complete log from the artifact cache: a step that ended before
you attached gets its whole log, and one you watched keeps the same content.
Ctrl-C stops following and leaves the build running (but a build submitted
without --detach is cancelled after a grace period once nobody follows it).

Exit status: 0 when every step succeeded; 1 when the build failed or was
cancelled, or when you stopped following before it ended.`

func runAttach(env *Env, args []string) int {
	cmd := newControllerCommand(env, "attach", "[flags] BUILD_ID", attachAbout, 1)
	cacheAddr := cacheFlag(cmd.fs)
	from := cmd.fs.Uint64("from", 0, "replay only events with at least this sequence number (0 or 1: all of them)")
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		return attach(ctx, env, client, cmd.fs.Arg(0), *cacheAddr, *from)
	})
}

// attach follows build id until it ends or the user stops following.
func attach(ctx context.Context, env *Env, client *controllerClient, id, cacheAddr string, from uint64) (int, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// Status first: an unknown id is then reported as such, not as a broken
	// stream, and the note on Ctrl-C can say whether the build outlives us.
	st, err := client.status(ctx, id)
	if err != nil {
		return 0, err
	}
	cache, err := dialCache(cacheAddr)
	if err != nil {
		return 0, fmt.Errorf("artifact cache address %q: %w", cacheAddr, err)
	}
	defer cache.Close()
	stream, err := client.Attach(ctx, &pb.AttachRequest{BuildId: id, FromSequence: from})
	if err != nil {
		return 0, err
	}

	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(interrupts)
	go func() {
		select {
		case <-interrupts:
			fmt.Fprintf(env.Stderr, "\ninitiator: stopped following build %s; %s\n", id, afterDetaching(st.GetBuild()))
			stop()
		case <-ctx.Done():
		}
	}()

	var created time.Time
	if c := st.GetBuild().GetCreated(); c != nil {
		created = c.AsTime()
	}
	tty := isTerminal(env.Stdout)
	w := newReplayWatcher(env, tty, created, func(log *pb.Digest, to io.Writer) error {
		return writeLog(ctx, cache, log, to)
	})
	defer w.close()
	ticks, stopTicks := redrawTicks(tty)
	defer stopTicks()
	return followEvents(ctx, env, "attach", client, w, func() (*pb.BuildEvent, error) {
		resp, err := stream.Recv()
		return resp.GetEvent(), err
	}, nil, ticks), nil
}

// afterDetaching says what becomes of the build once this initiator stops
// following it: the controller cancels a build submitted without --detach
// after a grace period once nobody follows it.
func afterDetaching(b *pb.BuildSummary) string {
	again := "(follow it again with: initiator attach " + b.GetBuildId() + ")"
	if b.GetRequest().GetDetach() {
		return "it keeps running " + again
	}
	return "it keeps running, but it was submitted without --detach: once nobody follows it, " +
		"the controller cancels it after a grace period " + again
}
