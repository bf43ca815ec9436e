package initiator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "distbuild/proto/distbuild/v1"
)

// reconnectFor is how long build keeps trying to re-join its build after
// losing the controller: long enough for a controller restart, and the
// controller keeps the build for its grace period meanwhile.
const reconnectFor = 2 * time.Minute

// buildEvents follows a submitted build. If the controller goes away after
// accepting the build, it re-joins with Attach from the event after the
// last one seen, with backoff, so a controller restart costs the user
// nothing: events are durable and numbered, so none is missed or repeated.
type buildEvents struct {
	ctx    context.Context
	env    *Env
	client *controllerClient
	stream pb.BuildService_BuildClient

	mu       sync.Mutex
	attach   pb.BuildService_AttachClient // set once re-joined
	buildID  string
	lastSeq  uint64
	finished bool
}

// next returns the build's next event.
func (b *buildEvents) next() (*pb.BuildEvent, error) {
	for {
		var ev *pb.BuildEvent
		var err error
		if b.attach != nil {
			var resp *pb.AttachResponse
			resp, err = b.attach.Recv()
			ev = resp.GetEvent()
		} else {
			var resp *pb.BuildResponse
			resp, err = b.stream.Recv()
			ev = resp.GetEvent()
		}
		if err == nil {
			b.mu.Lock()
			if a := ev.GetAccepted(); a != nil {
				b.buildID = a.BuildId
			}
			if ev.Sequence > b.lastSeq {
				b.lastSeq = ev.Sequence
			}
			b.mu.Unlock()
			return ev, nil
		}
		if b.buildID == "" || b.ctx.Err() != nil || status.Code(err) != codes.Unavailable {
			return nil, err
		}
		if err := b.rejoin(err); err != nil {
			return nil, err
		}
	}
}

// rejoin attaches to the build again, retrying with backoff.
func (b *buildEvents) rejoin(cause error) error {
	fmt.Fprintf(b.env.Stderr, "initiator: lost the controller (%s); re-joining build %s\n", status.Convert(cause).Message(), b.buildID)
	deadline := time.Now().Add(reconnectFor)
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		stream, err := b.client.Attach(b.ctx, &pb.AttachRequest{BuildId: b.buildID, FromSequence: b.lastSeq + 1})
		if err == nil {
			b.mu.Lock()
			b.attach = stream
			b.mu.Unlock()
			return nil
		}
		if time.Now().Add(wait).After(deadline) || b.ctx.Err() != nil {
			return fmt.Errorf("could not re-join build %s within %s: %w (follow it later with: initiator attach %s)", b.buildID, reconnectFor, err, b.buildID)
		}
		select {
		case <-time.After(wait):
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

// cancel asks for the build to be cancelled: on the Build stream while it
// lasts, with the Cancel call once re-joined.
func (b *buildEvents) cancel() {
	b.mu.Lock()
	id, rejoined := b.buildID, b.attach != nil
	b.mu.Unlock()
	if !rejoined {
		_ = b.stream.Send(&pb.BuildRequest{Request: &pb.BuildRequest_Cancel{Cancel: &pb.CancelBuild{}}})
		return
	}
	ctx, stop := context.WithTimeout(b.ctx, rpcTimeout)
	defer stop()
	_, _ = b.client.Cancel(ctx, &pb.CancelRequest{BuildId: id})
}
