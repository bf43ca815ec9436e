package controller

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/auth"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/scheduler"
)

// workerService implements WorkerService.
type workerService struct {
	pb.UnimplementedWorkerServiceServer
	c *Controller
}

// maxSlots bounds what a worker may claim, so a typo cannot flood it.
const maxSlots = 1024

func validateRegistration(r *pb.WorkerRegistration) error {
	switch {
	case r == nil:
		return status.Error(codes.InvalidArgument, "the first message of a Work stream must be a WorkerRegistration")
	case r.Name == "" || len(r.Name) > 128:
		return status.Error(codes.InvalidArgument, "a worker needs a name of 1 to 128 characters")
	case r.Slots < 1 || r.Slots > maxSlots:
		return status.Errorf(codes.InvalidArgument, "worker %s: slots must be between 1 and %d, not %d", r.Name, maxSlots, r.Slots)
	case r.Arch == "":
		return status.Errorf(codes.InvalidArgument, "worker %s: arch is required", r.Name)
	}
	return nil
}

// session is one worker's connection. Responses are queued without bound
// and sent by the stream's own goroutine, so the controller never blocks on
// a slow worker while holding its lock.
type session struct {
	name   string
	signal chan struct{} // responses are queued
	heard  chan struct{} // the worker sent something: renew its lease
	done   chan struct{} // the session was dropped
	// jobs are the job ids this session has been given and not yet
	// reported finished; guarded by Controller.mu.
	jobs map[string]bool

	mu    sync.Mutex
	queue []*pb.WorkResponse
}

func (s *session) send(r *pb.WorkResponse) {
	s.mu.Lock()
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *session) take() []*pb.WorkResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// Work serves one worker for as long as it stays connected and reports
// before each deadline.
func (w *workerService) Work(stream pb.WorkerService_WorkServer) error {
	c := w.c
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if err := validateRegistration(reg); err != nil {
		return err
	}
	// With authentication on, a worker's token names it: it cannot take
	// over another worker's jobs by registering under its name.
	if p, ok := auth.FromContext(stream.Context()); ok && p.Name != reg.Name {
		c.log.Warn("refused a worker registering under another name", "token_of", p.Name, "registered_as", reg.Name)
		return status.Errorf(codes.PermissionDenied, "the token of worker %s cannot register as %s", p.Name, reg.Name)
	}
	s := c.connect(reg)
	reason := "its connection closed"
	defer func() { c.disconnect(s, reason) }()

	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if err := c.handle(s, msg); err != nil {
				recvErr <- err
				return
			}
		}
	}()
	lease := time.NewTimer(c.cfg.WorkerLease)
	defer lease.Stop()
	for {
		select {
		case err := <-recvErr:
			return err
		case <-s.done:
			return status.Error(codes.Aborted, "replaced by a newer connection from the same worker")
		case <-lease.C:
			reason = fmt.Sprintf("it sent nothing for %s", c.cfg.WorkerLease)
			c.log.Warn("worker missed its report deadline", "worker", s.name, "lease", c.cfg.WorkerLease)
			return status.Errorf(codes.DeadlineExceeded, "no report within %s", c.cfg.WorkerLease)
		case <-s.heard:
			if !lease.Stop() {
				<-lease.C
			}
			lease.Reset(c.cfg.WorkerLease)
		case <-s.signal:
			for _, r := range s.take() {
				r.ReportDeadline = timestamppb.New(time.Now().Add(c.cfg.WorkerLease))
				if err := stream.Send(r); err != nil {
					return err
				}
			}
		}
	}
}

// connect registers a worker, replacing an older session of the same name.
func (c *Controller) connect(reg *pb.WorkerRegistration) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.sessions[reg.Name]; old != nil {
		c.dropSession(old, "it reconnected")
	}
	s := &session{name: reg.Name, signal: make(chan struct{}, 1), heard: make(chan struct{}, 1), done: make(chan struct{}), jobs: map[string]bool{}}
	c.sessions[reg.Name] = s
	c.sched.AddWorker(reg.Name, int(reg.Slots), reg.Arch, reg.Tags)
	c.sched.WorkerHolds(reg.Name, reg.LocalCacheKeys)
	c.log.Info("worker connected", "worker", reg.Name, "slots", reg.Slots, "arch", reg.Arch, "tags", reg.Tags)
	s.send(&pb.WorkResponse{})
	c.dispatch()
	return s
}

// disconnect forgets a session when its stream ends.
func (c *Controller) disconnect(s *session, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.name] == s {
		c.dropSession(s, reason)
		c.dispatch()
	}
}

// dropSession requeues a session's jobs elsewhere. Called with c.mu held.
func (c *Controller) dropSession(s *session, reason string) {
	delete(c.sessions, s.name)
	close(s.done)
	c.log.Warn("worker disconnected; its jobs are requeued", "worker", s.name, "jobs", len(s.jobs), "reason", reason)
	c.apply(c.sched.RemoveWorker(s.name, fmt.Sprintf("worker %s was lost: %s", s.name, reason)))
}

// handle processes one message from a worker. Any message renews the
// worker's lease; a state report is answered with a fresh deadline.
func (c *Controller) handle(s *session, msg *pb.WorkRequest) error {
	select {
	case s.heard <- struct{}{}:
	default:
	}
	switch m := msg.Message.(type) {
	case *pb.WorkRequest_State:
		c.report(s, m.State)
		s.send(&pb.WorkResponse{})
	case *pb.WorkRequest_Output:
		c.relayOutput(s, m.Output)
	case *pb.WorkRequest_Register:
		return status.Error(codes.InvalidArgument, "a worker registers once, in the first message")
	default:
		return status.Error(codes.InvalidArgument, "empty WorkRequest")
	}
	return nil
}

// report applies a worker's snapshot of its jobs.
func (c *Controller) report(s *session, state *pb.WorkerState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ack, cancel []string
	for _, js := range state.Jobs {
		t := c.sched.Job(js.JobId)
		current := t != nil && t.Worker() == s.name && s.jobs[js.JobId]
		// A finished job is no longer the session's even when it is no
		// longer current: the running step of a build that ended (was
		// cancelled, or failed elsewhere) left the scheduler at once, and
		// stayed in s.jobs for the session's life when forgotten only here.
		switch js.Phase {
		case pb.JobPhase_JOB_PHASE_DONE:
			ack = append(ack, js.JobId)
			delete(s.jobs, js.JobId)
			if current {
				c.jobDone(s, t, js)
			}
		case pb.JobPhase_JOB_PHASE_FAILED:
			ack = append(ack, js.JobId)
			delete(s.jobs, js.JobId)
			if current {
				c.jobFailed(s, js)
			}
		default:
			if !current {
				// A job from before a reconnect or restart that nobody
				// wants any more.
				cancel = append(cancel, js.JobId)
			}
		}
	}
	if len(ack) > 0 || len(cancel) > 0 {
		s.send(&pb.WorkResponse{AcknowledgedJobIds: ack, CancelJobIds: cancel})
	}
	c.dispatch()
}

func (c *Controller) jobDone(s *session, t *scheduler.Task, js *pb.JobStatus) {
	m := js.GetManifest()
	if m == nil || m.CacheKey != t.Key {
		c.jobFailed(s, &pb.JobStatus{JobId: js.JobId, Failure: &pb.JobFailure{
			Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: "worker reported success without the step's manifest"}})
		return
	}
	p := t.Payload.(*task)
	p.worker = s.name
	if m.Started != nil && m.Finished != nil {
		p.duration = m.Finished.AsTime().Sub(m.Started.AsTime())
		c.learnDuration(p.ref.StepName, p.duration)
	}
	for _, f := range m.Files {
		if f.Role == pb.FileRole_FILE_ROLE_LOG {
			p.log = f.Digest
		}
	}
	c.apply(c.sched.Finished(js.JobId))
}

func (c *Controller) jobFailed(s *session, js *pb.JobStatus) {
	f := js.GetFailure()
	kind := scheduler.SetupFailure
	if f.GetKind() == pb.FailureKind_FAILURE_KIND_BUILD {
		kind = scheduler.BuildFailure
	}
	if t := c.sched.Job(js.JobId); t != nil {
		t.Payload.(*task).log = f.GetLog()
	}
	reason := f.GetReason()
	if reason == "" {
		reason = "the worker gave no reason"
	}
	c.apply(c.sched.Failed(js.JobId, scheduler.Failure{Kind: kind, Worker: s.name, Reason: reason, ExitCode: int(f.GetExitCode())}))
}

// relayOutput passes a running job's output to every build that wants it.
func (c *Controller) relayOutput(s *session, out *pb.JobOutput) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.sched.Job(out.JobId)
	if t == nil || t.Worker() != s.name {
		return
	}
	name := t.Payload.(*task).ref.StepName
	for _, b := range c.sched.WantedBy(t) {
		if bb := c.builds[b.ID]; bb != nil {
			bb.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepOutput{StepOutput: &pb.StepOutput{
				StepName: name, Stream: out.Stream, Data: out.Data}}})
		}
	}
}
