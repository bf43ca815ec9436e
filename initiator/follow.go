package initiator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/status"

	pb "distbuild/proto/distbuild/v1"
)

// followEvents feeds a build's events to w until the build ends, and
// returns the exit status w decides. build and attach share it so that a
// re-joined build is shown exactly like one followed from the start. stop,
// when not nil, is asked after each event whether to stop following early
// (build --detach stops once the build is accepted); that returns ExitOK.
// Each tick from ticks (see redrawTicks) redraws w's progress display
// while it waits for an event. A stream that breaks is a failure, except
// when ctx was cancelled: then the caller has already told the user why
// it stopped.
func followEvents(ctx context.Context, env *Env, cmd string, c *controllerClient, w *watcher, recv func() (*pb.BuildEvent, error), stop func(*pb.BuildEvent) bool, ticks <-chan time.Time) int {
	// recv blocks, so it runs on its own goroutine, one call per request:
	// it is never called again after the build ended, and the watcher is
	// only touched here.
	type received struct {
		ev  *pb.BuildEvent
		err error
	}
	want, got := make(chan struct{}), make(chan received)
	defer close(want)
	go func() {
		for range want {
			ev, err := recv()
			got <- received{ev, err}
		}
	}()
	for {
		want <- struct{}{}
		var r received
	wait:
		for {
			select {
			case r = <-got:
				break wait
			case now := <-ticks:
				w.tick(now)
			}
		}
		ev, err := r.ev, r.err
		if errors.Is(err, io.EOF) {
			return fail(env, cmd, errors.New("the controller closed the stream before the build ended"))
		}
		if err != nil {
			if ctx.Err() != nil {
				return ExitFailure
			}
			return fail(env, cmd, fmt.Errorf("lost the controller at %s: %s", c.addr, status.Convert(err).Message()))
		}
		if done, code := w.handle(ev); done {
			return code
		}
		if stop != nil && stop(ev) {
			return ExitOK
		}
	}
}

// redrawTicks is what makes followEvents redraw the progress display every
// second on a terminal; elsewhere it never ticks, since plain output is
// one line per event. stop releases the ticker.
func redrawTicks(tty bool) (ticks <-chan time.Time, stop func()) {
	if !tty {
		return nil, func() {}
	}
	t := time.NewTicker(time.Second)
	return t.C, t.Stop
}
