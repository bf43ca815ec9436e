package initiator

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/status"

	pb "distbuild/proto/distbuild/v1"
)

// followEvents feeds a build's events to w until the build ends, and
// returns the exit status w decides. build and attach share it so that a
// re-joined build is shown exactly like one followed from the start. stop,
// when not nil, is asked after each event whether to stop following early
// (build --detach stops once the build is accepted); that returns ExitOK.
// A stream that breaks is a failure, except when ctx was cancelled: then
// the caller has already told the user why it stopped.
func followEvents(ctx context.Context, env *Env, cmd string, c *controllerClient, w *watcher, recv func() (*pb.BuildEvent, error), stop func(*pb.BuildEvent) bool) int {
	for {
		ev, err := recv()
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
