package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/auth"
	"distbuild/digest"
	"distbuild/manifestsig"
	"distbuild/notify"
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
	// publicKey is the key the worker registered, which must verify the
	// manifests it reports done.
	publicKey []byte
	// instance is the worker process's instance id.
	instance string
	// reg is what the worker said about itself when it registered.
	reg *pb.WorkerRegistration
	// draining is set once the worker says it is shutting down; guarded
	// by Controller.mu.
	draining bool
	// connected is when the session began.
	connected time.Time

	// Guarded by Controller.mu:
	// jobs are the job ids this session has been given (or has had adopted)
	// and not yet reported finished, with their step names.
	jobs map[string]string
	// verifying holds the jobs reported done whose manifests are being
	// checked in the cache.
	verifying map[string]bool
	// cancelled holds stopped jobs of cancelled builds, with the step
	// status that gets their log when the worker reports it.
	cancelled map[string]*pb.StepStatus
	// last is the worker's latest snapshot, looked at again when a build
	// resumed after a restart has been resolved.
	last *pb.WorkerState

	mu    sync.Mutex
	queue []*pb.WorkResponse
	// lastSeen is when the worker last sent anything.
	lastSeen time.Time
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
	s, err := c.connect(reg)
	if err != nil {
		return err
	}
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
	expired := make(chan struct{}, 1)
	lease := c.cfg.Clock.AfterFunc(c.cfg.WorkerLease, func() { expired <- struct{}{} })
	defer lease.Stop()
	for {
		select {
		case err := <-recvErr:
			return err
		case <-stream.Context().Done():
			// The worker went away, or its token was revoked: then the
			// stream ends now and its jobs go elsewhere at once.
			err := auth.EndedBy(stream.Context())
			if status.Code(err) == codes.Unauthenticated {
				reason = "its token was revoked"
				c.log.Warn("ending the session of a revoked worker", "worker", s.name)
			}
			return err
		case <-s.done:
			return status.Error(codes.Aborted, "replaced by a newer connection from the same worker")
		case <-expired:
			reason = fmt.Sprintf("it sent nothing for %s", c.cfg.WorkerLease)
			c.log.Warn("worker missed its report deadline", "worker", s.name, "lease", c.cfg.WorkerLease)
			return status.Errorf(codes.DeadlineExceeded, "no report within %s", c.cfg.WorkerLease)
		case <-s.heard:
			lease.Reset(c.cfg.WorkerLease)
			select {
			case <-expired: // it expired just before: the report came in time
			default:
			}
		case <-s.signal:
			for _, r := range s.take() {
				r.ReportDeadline = timestamppb.New(c.cfg.Clock.Now().Add(c.cfg.WorkerLease))
				if err := c.sendWithin(stream, s, r); err != nil {
					return err
				}
			}
		}
	}
}

// sendWithin sends a response to a worker, dropping its session when the
// send makes no progress for a lease. A worker that stops reading its
// stream (its receive window full) would otherwise block the send, and
// this loop with it, for as long as it pleased, keeping its jobs while
// its reports renewed its lease; now its jobs go elsewhere, as a silent
// worker's do. The send itself returns only once the worker reads or goes
// away (gRPC offers no way to abandon it), but the session is gone then.
func (c *Controller) sendWithin(stream pb.WorkerService_WorkServer, s *session, r *pb.WorkResponse) error {
	stall := c.cfg.Clock.AfterFunc(c.cfg.WorkerLease, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.sessions[s.name] == s {
			c.log.Warn("worker reads nothing the controller sends; dropping it", "worker", s.name, "lease", c.cfg.WorkerLease)
			c.dropSession(s, fmt.Sprintf("it read nothing the controller sent for %s", c.cfg.WorkerLease))
			c.dispatch()
		}
	})
	defer stall.Stop()
	return stream.Send(r)
}

// connect registers a worker, replacing an older session of the same name.
func (c *Controller) connect(reg *pb.WorkerRegistration) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.sessions[reg.Name]; old != nil {
		if old.instance != reg.InstanceId {
			c.log.Warn("refused a second worker under a name already connected", "worker", reg.Name)
			return nil, status.Errorf(codes.AlreadyExists,
				"a worker named %s is already connected from another process; give each worker its own --name (a restarted worker is let in once the controller notices its old connection is gone, within --worker-lease)", reg.Name)
		}
		c.dropSession(old, "it reconnected")
	}
	s := &session{name: reg.Name, instance: reg.InstanceId, reg: reg, signal: make(chan struct{}, 1), heard: make(chan struct{}, 1), done: make(chan struct{}), publicKey: reg.PublicKey,
		jobs: map[string]string{}, verifying: map[string]bool{}, cancelled: map[string]*pb.StepStatus{}}
	s.connected, s.lastSeen = c.cfg.Clock.Now(), c.cfg.Clock.Now()
	c.sessions[reg.Name] = s
	c.sched.AddWorker(reg.Name, int(reg.Slots), reg.Arch, reg.Tags)
	c.sched.WorkerHolds(reg.Name, reg.LocalCacheKeys)
	c.log.Info("worker connected", "worker", reg.Name, "slots", reg.Slots, "arch", reg.Arch, "tags", reg.Tags)
	c.notifyWorker(notify.WorkerJoined, s, "")
	s.send(&pb.WorkResponse{})
	c.dispatch()
	return s, nil
}

// disconnect forgets a session when its stream ends.
func (c *Controller) disconnect(s *session, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopping:
		// Not lost: the controller is going away, not the worker.
		if c.sessions[s.name] == s {
			delete(c.sessions, s.name)
		}
	case c.sessions[s.name] == s:
		c.dropSession(s, reason)
		c.dispatch()
	}
}

// dropSession requeues a session's jobs elsewhere. Called with c.mu held.
func (c *Controller) dropSession(s *session, reason string) {
	delete(c.sessions, s.name)
	close(s.done)
	c.log.Warn("worker disconnected; its jobs are requeued", "worker", s.name, "jobs", len(s.jobs), "reason", reason)
	if !s.draining {
		c.notifyWorker(notify.WorkerLost, s, reason)
	}
	events := c.sched.RemoveWorker(s.name, fmt.Sprintf("worker %s was lost: %s", s.name, reason))
	requeued := map[*scheduler.Task]bool{}
	for _, ev := range events {
		if ev.Kind == scheduler.StepFailed && ev.WillRetry {
			requeued[ev.Task] = true
		}
	}
	c.metrics.requeues.Add(float64(len(requeued)))
	c.apply(events)
}

// handle processes one message from a worker. Any message renews the
// worker's lease; a state report is answered with a fresh deadline.
func (c *Controller) handle(s *session, msg *pb.WorkRequest) error {
	select {
	case s.heard <- struct{}{}:
	default:
	}
	s.mu.Lock()
	s.lastSeen = c.cfg.Clock.Now()
	s.mu.Unlock()
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
	c.checkMissingClaims(s, state)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.name] != s {
		return // replaced: its worker speaks through the new session now
	}
	c.reconcile(s, state)
	c.dispatch()
}

// reconcile applies a snapshot: finished jobs are recorded (done ones once
// the cache confirms them) and acknowledged, jobs from before a restart are
// adopted, and jobs nobody wants are cancelled. Called with c.mu held.
func (c *Controller) reconcile(s *session, state *pb.WorkerState) {
	s.last = state
	if state.Draining && !s.draining {
		s.draining = true
		c.sched.Drain(s.name)
		c.log.Info("worker draining: it finishes its jobs and gets no new ones", "worker", s.name, "jobs", len(s.jobs))
	}
	var ack, cancel []string
	var confirm []*pb.JobStatus
	reported := map[string]bool{}
	for _, js := range state.Jobs {
		reported[js.CacheKey] = true
		if _, known := s.jobs[js.JobId]; !known && c.sched.Job(js.JobId) == nil && js.CacheKey != "" {
			c.adopt(s, js)
		}
		t := c.sched.Job(js.JobId)
		_, given := s.jobs[js.JobId]
		current := t != nil && t.Worker() == s.name && given
		// A finished job is no longer the session's even when it is no
		// longer current: the running step of a build that ended (was
		// cancelled, or failed elsewhere) left the scheduler at once, and
		// stayed in s.jobs for the session's life when forgotten only here.
		switch js.Phase {
		case pb.JobPhase_JOB_PHASE_DONE:
			switch {
			case current && isCheck(t):
				// A check stores nothing under a cache key, so there
				// is nothing to confirm in the cache.
				ack = append(ack, js.JobId)
				delete(s.jobs, js.JobId)
				c.checkDone(s, t, js)
			case current && !s.verifying[js.JobId]:
				s.verifying[js.JobId] = true
				confirm = append(confirm, js)
				// Its slot is free while the cache confirms the result.
				c.sched.Reported(js.JobId)
			case !current && !given && c.restoring > 0:
				// Perhaps a resumed build's, not resolved yet: keep it
				// reported until that build is.
			case !current:
				ack = append(ack, js.JobId)
				delete(s.jobs, js.JobId)
				delete(s.cancelled, js.JobId) // it finished before the cancel reached it
			}
		case pb.JobPhase_JOB_PHASE_FAILED:
			if !current && !given && c.restoring > 0 {
				continue
			}
			ack = append(ack, js.JobId)
			delete(s.jobs, js.JobId)
			if st := s.cancelled[js.JobId]; st != nil {
				st.Log = js.GetFailure().GetLog()
				delete(s.cancelled, js.JobId)
			}
			if current {
				c.jobFailed(s, js)
			}
		default:
			if !current && c.restoring == 0 {
				// A job from before a reconnect or restart that nobody
				// wants any more.
				cancel = append(cancel, js.JobId)
			}
		}
	}
	// Steps held for this worker since a restart that it no longer holds
	// will not be heard of again.
	for _, k := range c.sched.Held(s.name) {
		if !reported[k] {
			c.sched.Unhold(k)
		}
	}
	if len(ack) > 0 || len(cancel) > 0 {
		s.send(&pb.WorkResponse{AcknowledgedJobIds: ack, CancelJobIds: cancel})
	}
	s.forgetReported(ack)
	if len(confirm) > 0 {
		go c.confirmDone(s, confirm)
	}
}

// forgetReported drops acknowledged jobs from the session's latest
// snapshot, so looking at it again (reconcileAll) cannot adopt or count
// them a second time. Called with Controller.mu held.
func (s *session) forgetReported(ids []string) {
	if len(ids) == 0 || s.last == nil {
		return
	}
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	kept := &pb.WorkerState{Draining: s.last.Draining}
	for _, js := range s.last.Jobs {
		if !gone[js.JobId] {
			kept.Jobs = append(kept.Jobs, js)
		}
	}
	s.last = kept
}

// adopt makes a job the worker holds but this controller did not give it
// (it predates a restart) the current attempt at its step, when that step
// is wanted and not running elsewhere. Called with c.mu held.
func (c *Controller) adopt(s *session, js *pb.JobStatus) {
	events, ok := c.sched.Adopt(js.CacheKey, s.name, js.JobId)
	if !ok {
		return
	}
	t := c.sched.Job(js.JobId)
	s.jobs[js.JobId] = t.Payload.(*task).ref.StepName
	c.log.Info("adopted a job from before the restart", "worker", s.name, "job", js.JobId, "step", t.Name, "phase", js.Phase.String())
	c.apply(events)
}

// confirmTimeout bounds one check of a reported manifest in the cache.
const confirmTimeout = 30 * time.Second

// confirmDone checks, outside the lock, that each job reported done really
// left its manifest in the cache, signed by this worker and made by this
// attempt; only then is the step built. A worker that claims success
// without a stored result has failed the attempt, as a farm failure: it is
// retried elsewhere. When the cache cannot be asked, the job stays
// unacknowledged and is confirmed at the worker's next report.
func (c *Controller) confirmDone(s *session, jobs []*pb.JobStatus) {
	problems := make([]error, len(jobs))
	for i, js := range jobs {
		problems[i] = c.checkManifest(s, js)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.name] != s {
		return // replaced: the worker reports these again to the new session
	}
	var ack []string
	defer func() { s.forgetReported(ack) }()
	for i, js := range jobs {
		delete(s.verifying, js.JobId)
		var lie falseClaim
		if problems[i] != nil && !errors.As(problems[i], &lie) {
			// The cache could not be asked (unreachable, or failing for
			// reasons of its own): that is no fault of the worker's.
			c.log.Warn("cannot confirm a finished step in the cache; asking again at the next report", "worker", s.name, "job", js.JobId, "error", problems[i])
			continue
		}
		ack = append(ack, js.JobId)
		delete(s.jobs, js.JobId)
		t := c.sched.Job(js.JobId)
		if t == nil || t.Worker() != s.name {
			continue // no longer current: the build ended meanwhile
		}
		if problems[i] != nil {
			c.log.Warn("a worker reported a step done that the cache does not confirm", "worker", s.name, "job", js.JobId, "step", t.Name, "error", problems[i])
			c.apply(c.sched.Failed(js.JobId, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: s.name, Untrusted: true,
				Reason: "worker " + s.name + " reported success, but " + problems[i].Error()}))
			continue
		}
		c.jobDone(s, t, js)
	}
	if len(ack) > 0 {
		s.send(&pb.WorkResponse{AcknowledgedJobIds: ack})
	}
	c.dispatch()
}

// falseClaim is a worker's report of success that the cache contradicts:
// no manifest, another attempt's, or one not signed with its key. Other
// errors from checkManifest are the cache's, not the worker's.
type falseClaim struct{ error }

// checkManifest compares a job's reported manifest with the one the cache
// holds under its key.
func (c *Controller) checkManifest(s *session, js *pb.JobStatus) error {
	reported := js.GetManifest()
	if reported == nil {
		return falseClaim{errors.New("it sent no manifest")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), confirmTimeout)
	defer cancel()
	key, err := digest.ParseCacheKey(reported.CacheKey)
	if err != nil {
		return falseClaim{fmt.Errorf("its manifest names no valid cache key: %w", err)}
	}
	stored, err := c.cfg.Cache.GetManifest(ctx, key)
	switch {
	case status.Code(err) == codes.NotFound:
		return falseClaim{fmt.Errorf("the cache holds no manifest for %s", reported.CacheKey)}
	case err != nil:
		return err
	case !proto.Equal(stored, reported):
		return falseClaim{fmt.Errorf("the cache holds another attempt's manifest for %s (job %s on worker %s)",
			reported.CacheKey, stored.GetGrant().GetJobId(), stored.GetWorker())}
	case len(s.publicKey) > 0:
		if err := manifestsig.Verify(stored, s.publicKey); err != nil {
			return falseClaim{fmt.Errorf("its manifest for %s is not signed with its registered key: %w", reported.CacheKey, err)}
		}
	}
	return nil
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
	p.profile = boundedProfile(js.GetProfile())
	if m.Started != nil && m.Finished != nil {
		p.duration = m.Finished.AsTime().Sub(m.Started.AsTime())
		c.learnDuration(p.ref.StepName, p.duration)
		c.metrics.stepEnded(outcomeBuilt, p.duration)
	} else {
		c.metrics.stepEnded(outcomeBuilt, c.cfg.Clock.Now().Sub(p.started))
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
	t := c.sched.Job(js.JobId)
	if t != nil {
		p := t.Payload.(*task)
		p.log = f.GetLog()
		p.profile = boundedProfile(js.GetProfile())
		outcome := outcomeSetupFailure
		if kind == scheduler.BuildFailure {
			outcome = outcomeBuildFailure
		}
		c.metrics.stepEnded(outcome, c.cfg.Clock.Now().Sub(p.started))
	}
	reason := f.GetReason()
	if reason == "" {
		reason = "the worker gave no reason"
	}
	failure := scheduler.Failure{Kind: kind, Worker: s.name, Reason: reason, ExitCode: int(f.GetExitCode())}
	var events []scheduler.Event
	var reopened []*scheduler.Task
	var wanted []*scheduler.Build
	if t != nil {
		wanted = c.sched.WantedBy(t)
	}
	if missing := f.GetMissingCacheKeys(); len(missing) > 0 && t != nil {
		events, reopened = c.sched.Rebuild(js.JobId, missing, failure)
	} else {
		events = c.sched.Failed(js.JobId, failure)
	}
	if t != nil && isCheck(t) {
		c.checkFailed(wanted, t, s.name, reason)
	}
	c.apply(events)
	if len(reopened) > 0 {
		c.rebuildMissing(s, t, reopened, reason)
	}
	if t != nil && (t.State() == scheduler.Ready || len(reopened) > 0) {
		c.metrics.retries.Inc()
	}
}

// checkMissingClaims keeps, of the inputs a failed job says the cache
// lacks, only those the cache really lacks: a worker's word alone must not
// make the farm build finished steps again. When the cache cannot be
// asked, the claim is dropped and the failure is an ordinary farm
// failure. Called without c.mu: it asks the cache.
func (c *Controller) checkMissingClaims(s *session, state *pb.WorkerState) {
	for _, js := range state.Jobs {
		f := js.GetFailure()
		if len(f.GetMissingCacheKeys()) == 0 {
			continue
		}
		var keys []digest.CacheKey
		for _, k := range f.MissingCacheKeys {
			if key, err := digest.ParseCacheKey(k); err == nil {
				keys = append(keys, key)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), confirmTimeout)
		_, missing, err := c.cfg.Cache.FindMissing(ctx, nil, keys)
		cancel()
		if err != nil {
			c.log.Warn("cannot check the inputs a worker says are missing; retrying the step as is", "worker", s.name, "job", js.JobId, "error", err)
			missing = nil
		}
		if len(missing) < len(f.MissingCacheKeys) {
			c.log.Warn("a worker said inputs were missing that the cache holds", "worker", s.name, "job", js.JobId,
				"claimed", len(f.MissingCacheKeys), "missing", len(missing))
		}
		f.MissingCacheKeys = f.MissingCacheKeys[:0]
		for _, k := range missing {
			f.MissingCacheKeys = append(f.MissingCacheKeys, k.String())
		}
	}
}

// rebuildMissing records that steps the scheduler reopened are being built
// again because a job of t's found their artifacts gone from the cache (t
// waits for them), and fires the missing-input hook. Called with c.mu
// held.
func (c *Controller) rebuildMissing(s *session, t *scheduler.Task, reopened []*scheduler.Task, reason string) {
	for _, sb := range c.sched.WantedBy(t) {
		if b := c.builds[sb.ID]; b != nil {
			b.setStep(t.Name, pb.StepState_STEP_STATE_WAITING, s.name, int32(t.Attempts()), reason)
		}
	}
	for _, p := range reopened {
		c.metrics.rebuilt.Inc()
		state := pb.StepState_STEP_STATE_WAITING
		if p.State() == scheduler.Ready {
			state = pb.StepState_STEP_STATE_READY
		}
		c.log.Warn("a step's artifact vanished from the cache; building it again", "step", p.Name, "needed_by", t.Name, "worker", s.name)
		for _, sb := range c.sched.WantedBy(p) {
			b := c.builds[sb.ID]
			if b == nil {
				continue
			}
			b.setStep(p.Name, state, "", int32(p.Attempts()), "its artifact vanished from the cache; building it again")
			c.notifyBuild(notify.MissingInput, b, "", &notify.Step{Name: t.Name, CacheKey: t.Key, Worker: s.name, Kind: "setup",
				Reason: reason, Attempt: t.Attempts(), WillRetry: true, MissingCacheKey: p.Key, MissingStep: p.Name})
		}
	}
}

// relayOutput passes a running job's output to every build that wants it.
func (c *Controller) relayOutput(s *session, out *pb.JobOutput) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.sched.Job(out.JobId)
	if t == nil || t.Worker() != s.name || c.sessions[s.name] != s {
		return
	}
	p := t.Payload.(*task)
	if c.notifier != nil {
		p.tail.add(out.Data) // for notifications only
	}
	name := p.ref.StepName
	for _, b := range c.sched.WantedBy(t) {
		if bb := c.builds[b.ID]; bb != nil {
			bb.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepOutput{StepOutput: &pb.StepOutput{
				StepName: name, Stream: out.Stream, Data: out.Data}}})
		}
	}
}
