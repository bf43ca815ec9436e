package initiator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"distbuild/internal/timeline"
	pb "distbuild/proto/distbuild/v1"
)

const timelineAbout = `Writes a build's Gantt chart to an SVG file: one lane per worker slot, one
bar per attempt at a step, from when the worker started it to when it
finished or failed (by the controller's clock), coloured by outcome
(finished green, failed red, failed and retried orange, running grey), with
the critical path (the chain of steps, each waiting for the one before, that
ended last) outlined in black. Each bar's tooltip names the step, its worker
and its duration. A running build is drawn as it is so far.`

// caughtUp is how long a live build's replayed history may pause before
// the timeline takes it as complete: the replay arrives at once, and new
// events only as the build goes on.
const caughtUp = 500 * time.Millisecond

func runTimeline(env *Env, args []string) int {
	cmd := newControllerCommand(env, "timeline", "[flags] --svg FILE BUILD_ID", timelineAbout, 1)
	out := cmd.fs.String("svg", "", "write the chart to this file (required)")
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		if *out == "" {
			return 0, errors.New("--svg FILE is required")
		}
		id := cmd.fs.Arg(0)
		st, err := client.status(ctx, id)
		if err != nil {
			return 0, err
		}
		events, err := history(ctx, client, id, !buildEnded(st.GetBuild().GetState()))
		if err != nil {
			return 0, err
		}
		slots := map[string]int{}
		if ws, err := unary(ctx, client, client.Workers, &pb.WorkersRequest{}); err == nil {
			for _, w := range ws.GetWorkers() {
				slots[w.Name] = int(w.Slots)
			}
		}
		tl := timeline.New(st.GetBuild(), events, slots, time.Now())
		var buf bytes.Buffer
		if err := tl.WriteSVG(&buf); err != nil {
			return 0, err
		}
		path := *out
		if !filepath.IsAbs(path) {
			path = filepath.Join(env.Dir, path)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return 0, err
		}
		fmt.Fprintf(env.Stdout, "%s: %d steps on %d lanes\n", *out, len(tl.Bars), len(tl.Lanes))
		return ExitOK, nil
	})
}

// history reads a build's stored events. A live build's stream stays open
// for new events, so its history is taken to be complete once the stream
// pauses for caughtUp.
func history(ctx context.Context, client *controllerClient, id string, live bool) ([]*pb.BuildEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	stream, err := client.Attach(ctx, &pb.AttachRequest{BuildId: id})
	if err != nil {
		return nil, err
	}
	type received struct {
		ev  *pb.BuildEvent
		err error
	}
	next := make(chan received)
	go func() {
		for {
			resp, err := stream.Recv()
			select {
			case next <- received{resp.GetEvent(), err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var events []*pb.BuildEvent
	for {
		var pause <-chan time.Time
		if live {
			pause = time.After(caughtUp)
		}
		select {
		case r := <-next:
			switch {
			case r.err == io.EOF:
				return events, nil
			case r.err != nil:
				return nil, r.err
			case r.ev.GetSequence() > 0:
				events = append(events, r.ev)
			}
		case <-pause:
			return events, nil
		}
	}
}
