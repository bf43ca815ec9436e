package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "distbuild/proto/distbuild/v1"
)

// maxQueuedOutput bounds the step output waiting for one slow subscriber.
// Past it, output for that subscriber is replaced by a note saying how much
// was left out (the complete logs are in the cache), so one initiator that
// stops reading cannot make the controller hold unbounded memory.
const maxQueuedOutput = 64 << 20

// eventLog is one build's history plus the clients following it. History
// events are numbered from 1; step output goes only to current followers.
// Events pass through the journal: publish numbers and queues them, and
// deliver hands them to followers once they are durable.
type eventLog struct {
	buildID string
	journal *journal

	mu        sync.Mutex
	history   []*pb.BuildEvent
	delivered int // history[:delivered] is durable and delivered
	subs      map[*subscription]bool
	closing   bool // a terminal event was published
	ended     bool // and delivered
}

func newEventLog(buildID string, j *journal, history []*pb.BuildEvent) *eventLog {
	l := &eventLog{buildID: buildID, journal: j, history: history, delivered: len(history), subs: map[*subscription]bool{}}
	if n := len(history); n > 0 && endsBuild(history[n-1]) {
		l.closing, l.ended = true, true
	}
	return l
}

// endsBuild reports whether ev is the last event of a build.
func endsBuild(ev *pb.BuildEvent) bool {
	switch ev.Event.(type) {
	case *pb.BuildEvent_BuildFinished, *pb.BuildEvent_BuildFailed, *pb.BuildEvent_BuildCancelled:
		return true
	}
	return false
}

// publish numbers ev (unless it is output) and queues it for the journal.
// After a terminal event the log accepts nothing more.
func (l *eventLog) publish(ev *pb.BuildEvent) {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return
	}
	ev.BuildId = l.buildID
	ev.Time = timestamppb.Now()
	if _, output := ev.Event.(*pb.BuildEvent_StepOutput); !output {
		ev.Sequence = uint64(len(l.history) + 1)
		l.history = append(l.history, ev)
	}
	l.closing = endsBuild(ev)
	l.mu.Unlock()
	l.journal.enqueue(journalEntry{log: l, ev: ev})
}

// deliver hands a durable event to every follower, in publication order.
func (l *eventLog) deliver(ev *pb.BuildEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev.Sequence > 0 {
		l.delivered = int(ev.Sequence)
	}
	for s := range l.subs {
		s.push(ev)
	}
	if endsBuild(ev) {
		l.ended = true
		for s := range l.subs {
			s.close()
		}
		l.subs = nil
	}
}

// subscribe replays durable history from sequence from (1 for all of it)
// and then follows the build. Replay and registration happen under one
// lock, so no event is missed or repeated.
func (l *eventLog) subscribe(from uint64) *subscription {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &subscription{log: l, signal: make(chan struct{}, 1)}
	if from == 0 {
		from = 1
	}
	start := l.delivered // a from beyond the history replays nothing
	if from-1 < uint64(l.delivered) {
		start = int(from - 1)
	}
	for _, ev := range l.history[start:l.delivered] {
		s.push(ev)
	}
	if l.ended {
		s.close()
	} else {
		l.subs[s] = true
	}
	return s
}

func (l *eventLog) unsubscribe(s *subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.subs, s)
}

// has reports whether the history holds an event match accepts.
func (l *eventLog) has(match func(*pb.BuildEvent) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.history {
		if match(ev) {
			return true
		}
	}
	return false
}

// subscription is one follower's queue of events.
type subscription struct {
	log    *eventLog
	signal chan struct{}

	mu          sync.Mutex
	queue       []*pb.BuildEvent
	outputBytes int
	dropped     map[string]int // step name -> bytes of output left out
	closed      bool
}

func (s *subscription) push(ev *pb.BuildEvent) {
	s.mu.Lock()
	if out, ok := ev.Event.(*pb.BuildEvent_StepOutput); ok {
		n := len(out.StepOutput.Data)
		if s.outputBytes+n > maxQueuedOutput {
			if s.dropped == nil {
				s.dropped = map[string]int{}
			}
			s.dropped[out.StepOutput.StepName] += n
			s.mu.Unlock()
			return
		}
		s.outputBytes += n
	} else if name := stepNameOf(ev); name != "" && s.dropped[name] > 0 {
		// Say where output went missing before the step's next event.
		s.queue = append(s.queue, droppedNote(ev.BuildId, name, s.dropped[name]))
		delete(s.dropped, name)
	}
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	s.wake()
}

func droppedNote(buildID, step string, n int) *pb.BuildEvent {
	return &pb.BuildEvent{BuildId: buildID, Event: &pb.BuildEvent_StepOutput{StepOutput: &pb.StepOutput{
		StepName: step, Stream: pb.OutputStream_OUTPUT_STREAM_STDERR,
		Data: fmt.Appendf(nil, "\n[distbuild: %d bytes of output were not relayed because this client fell behind; the complete log is in the artifact cache]\n", n),
	}}}
}

func (s *subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wake()
}

func (s *subscription) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// next returns the next event, waiting for one; it returns nil, nil once the
// build has ended and everything was delivered.
func (s *subscription) next(ctx context.Context) (*pb.BuildEvent, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			if out, ok := ev.Event.(*pb.BuildEvent_StepOutput); ok {
				s.outputBytes -= len(out.StepOutput.Data)
			}
			s.mu.Unlock()
			return ev, nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return nil, nil
		}
		select {
		case <-s.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// stepNameOf names the step an event is about, if any.
func stepNameOf(ev *pb.BuildEvent) string {
	switch e := ev.Event.(type) {
	case *pb.BuildEvent_StepStarted:
		return e.StepStarted.GetStep().GetStepName()
	case *pb.BuildEvent_StepFinished:
		return e.StepFinished.GetStep().GetStepName()
	case *pb.BuildEvent_StepFailed:
		return e.StepFailed.GetStep().GetStepName()
	case *pb.BuildEvent_StepOutput:
		return e.StepOutput.GetStepName()
	}
	return ""
}

// snapshot copies the durable history, for pages that draw it. The events
// themselves are shared: nothing changes an event once it is published.
func (l *eventLog) snapshot() []*pb.BuildEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.history[:l.delivered])
}

// published is the sequence of the last event published.
func (l *eventLog) published() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.history)
}
