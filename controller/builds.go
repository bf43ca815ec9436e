package controller

import (
	"context"
	"errors"
	"io/fs"
	"iter"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"distbuild/auth"
	"distbuild/definitions"
	"distbuild/digest"
	"distbuild/notify"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/scheduler"
)

// buildService implements BuildService for initiators.
type buildService struct {
	pb.UnimplementedBuildServiceServer
	c *Controller
}

func validateStart(req *pb.StartBuild) error {
	switch {
	case req == nil:
		return status.Error(codes.InvalidArgument, "the first message of a Build stream must be a StartBuild")
	case req.RepoUrl == "" || strings.HasPrefix(req.RepoUrl, "-"):
		return status.Error(codes.InvalidArgument, "repo_url must name the definitions repository")
	case !definitions.IsCommit(req.Commit):
		return status.Errorf(codes.InvalidArgument, "commit %q is not a 40-character commit SHA", req.Commit)
	case !fs.ValidPath(req.MorphologyPath) || !strings.HasSuffix(req.MorphologyPath, ".morph"):
		return status.Errorf(codes.InvalidArgument, "morphology_path %q must be a relative path to a .morph file", req.MorphologyPath)
	}
	for _, c := range req.Components {
		if c == "" {
			return status.Error(codes.InvalidArgument, "components must not contain empty names")
		}
	}
	if len(req.CheckSteps) > 0 && !req.Check {
		return status.Error(codes.InvalidArgument, "check_steps names steps to check, so it needs check")
	}
	for _, name := range req.CheckSteps {
		if name == "" {
			return status.Error(codes.InvalidArgument, "check_steps must not contain empty names")
		}
	}
	for _, a := range req.NotifyEmails {
		if err := notify.CheckAddress(a); err != nil {
			return status.Errorf(codes.InvalidArgument, "notify_emails: %v", err)
		}
	}
	return nil
}

// Build accepts a build, then streams its events until it ends. The stream
// carries the client's cancellation; a client that goes away without
// detaching has its build cancelled after the grace period.
func (s *buildService) Build(stream pb.BuildService_BuildServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if err := validateStart(start); err != nil {
		return err
	}
	if len(start.NotifyEmails) > 0 && !s.c.notifier.CanMail() {
		return status.Error(codes.FailedPrecondition, "this controller sends no e-mail (it was started without --smtp-server), so it cannot --notify anyone")
	}
	var user string
	if p, ok := auth.FromContext(stream.Context()); ok {
		user = p.Name
	}
	b := s.c.startBuild(start, user)
	sub := b.log.subscribe(1)
	defer b.log.unsubscribe(sub)
	s.c.follow(b, +1)
	defer s.c.follow(b, -1)

	// The client may cancel on the same stream.
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			if msg.GetCancel() != nil {
				s.c.cancelBuild(b.id, "cancelled by the initiator")
			}
		}
	}()
	return sendEvents(stream.Context(), sub, func(ev *pb.BuildEvent) error {
		return stream.Send(&pb.BuildResponse{Event: ev})
	})
}

func sendEvents(ctx context.Context, sub *subscription, send func(*pb.BuildEvent) error) error {
	for {
		ev, err := sub.next(ctx)
		if err != nil {
			// The client went away, or its token was revoked.
			return auth.EndedBy(ctx)
		}
		if ev == nil {
			return nil
		}
		if err := send(ev); err != nil {
			return err
		}
	}
}

// Attach replays a build's history and follows it.
func (s *buildService) Attach(req *pb.AttachRequest, stream pb.BuildService_AttachServer) error {
	b, err := s.c.lookup(req.BuildId)
	if err != nil {
		return err
	}
	sub := b.log.subscribe(req.FromSequence)
	defer b.log.unsubscribe(sub)
	s.c.follow(b, +1)
	defer s.c.follow(b, -1)
	return sendEvents(stream.Context(), sub, func(ev *pb.BuildEvent) error {
		return stream.Send(&pb.AttachResponse{Event: ev})
	})
}

// List summarizes builds, newest first.
func (s *buildService) List(_ context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	resp := &pb.ListResponse{}
	for i := len(s.c.order) - 1; i >= 0; i-- {
		b := s.c.builds[s.c.order[i]]
		if b.live() || req.IncludeEnded {
			resp.Builds = append(resp.Builds, b.summary())
		}
	}
	return resp, nil
}

// Status reports a build and each of its steps.
func (s *buildService) Status(_ context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	b, err := s.c.lookup(req.BuildId)
	if err != nil {
		return nil, err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return &pb.StatusResponse{Build: b.summary(), Steps: s.c.stepStatuses(b)}, nil
}

// stepStatuses copies a build's step statuses, in build order, each with
// the latest check of its cache key; copies, because callers use them
// after releasing the lock. Called with c.mu held.
func (c *Controller) stepStatuses(b *build) []*pb.StepStatus {
	out := make([]*pb.StepStatus, 0, len(b.stepOrder))
	for _, name := range b.stepOrder {
		st := proto.Clone(b.steps[name]).(*pb.StepStatus)
		if r := c.checks[st.GetStep().GetCacheKey()]; r != nil {
			st.Check = proto.Clone(r).(*pb.CheckResult)
		}
		out = append(out, st)
	}
	return out
}

// Cancel stops a build.
func (s *buildService) Cancel(_ context.Context, req *pb.CancelRequest) (*pb.CancelResponse, error) {
	b, err := s.c.lookup(req.BuildId)
	if err != nil {
		return nil, err
	}
	s.c.cancelBuild(b.id, "cancelled on request")
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return &pb.CancelResponse{Build: b.summary()}, nil
}

func (c *Controller) lookup(id string) (*build, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.builds[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no build %q", id)
	}
	return b, nil
}

// startBuild records a new build and resolves it in the background.
func (c *Controller) startBuild(req *pb.StartBuild, user string) *build {
	ctx, cancel := context.WithCancel(context.Background())
	b := &build{
		id:      randomID(6),
		req:     req,
		user:    user,
		created: c.cfg.Clock.Now(),
		state:   pb.BuildState_BUILD_STATE_RESOLVING,
		cancel:  cancel,
		steps:   map[string]*pb.StepStatus{},
	}
	b.log = newEventLog(b.id, c.journal, nil)
	c.mu.Lock()
	c.builds[b.id] = b
	c.order = append(c.order, b.id)
	c.save(b)
	b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_Accepted{Accepted: &pb.BuildAccepted{BuildId: b.id}}})
	c.mu.Unlock()
	c.log.Info("build accepted", "build", b.id, "repo", req.RepoUrl, "commit", req.Commit, "morph", req.MorphologyPath, "components", req.Components)
	go c.resolve(ctx, b)
	return b
}

// resolve plans a build, asks the cache what exists, and hands the rest to
// the scheduler.
func (c *Controller) resolve(ctx context.Context, b *build) {
	started := c.cfg.Clock.Now()
	p, err := c.makePlan(ctx, b.req)
	var missing []digest.CacheKey
	if err == nil {
		keys := make([]digest.CacheKey, len(p.steps))
		for i, s := range p.steps {
			keys[i] = s.CacheKey
		}
		_, missing, err = c.cfg.Cache.FindMissing(ctx, nil, keys)
		if err != nil {
			err = errors.New("asking the artifact cache which artifacts exist: " + err.Error())
		} else {
			c.metrics.cacheHits.Add(float64(len(keys) - len(missing)))
			c.metrics.cacheMisses.Add(float64(len(missing)))
		}
	}
	isMissing := make(map[digest.CacheKey]bool, len(missing))
	for _, k := range missing {
		isMissing[k] = true
	}
	var finishedMeanwhile map[string]*pb.Manifest
	var bases map[*definitions.Step]checkBase
	if err == nil {
		finishedMeanwhile = c.finishedWhileDown(ctx, b, p, isMissing)
		bases = c.checkBases(ctx, p, isMissing)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.resumed {
		b.resumed = false
		c.restoring--
		// Reports held back while this build was being resolved can be
		// settled now.
		defer c.reconcileAll()
	}
	if !b.live() {
		return // cancelled while resolving
	}
	if err != nil {
		c.log.Warn("build could not be resolved", "build", b.id, "error", err)
		c.endBuild(b, pb.BuildState_BUILD_STATE_FAILED, &pb.BuildEvent{Event: &pb.BuildEvent_BuildFailed{BuildFailed: &pb.BuildFailed{Reason: err.Error()}}})
		return
	}
	b.plan = p
	replayed := b.steps // a resumed build's steps, as its history left them
	var catchUp []*pb.BuildEvent
	b.steps, b.stepOrder = map[string]*pb.StepStatus{}, nil
	gr := &pb.GraphResolved{}
	for _, w := range p.graph.Warnings {
		gr.Warnings = append(gr.Warnings, w.Error())
		c.log.Warn("definitions warning", "build", b.id, "warning", w.Error())
	}
	specs := make([]scheduler.TaskSpec, 0, len(p.steps)+len(p.checks))
	keys := make([]string, len(p.graph.Steps)) // by Step.Index: one string per key, shared by every task's inputs, deps and ref
	for _, s := range p.steps {
		keys[s.Index()] = s.CacheKey.String()
	}
	sets := p.graph.StagingSets()
	for _, s := range p.steps {
		deps := make([]string, len(s.Deps))
		names := make([]string, len(s.Deps))
		for j, d := range s.Deps {
			deps[j], names[j] = keys[d.Index()], d.Name
		}
		inputs := stagedInputs(sets, s, keys)
		if gated := gatedDeps(p, s); len(gated) > 0 {
			// Nothing is built on an artifact before its required
			// reproducibility check passes.
			deps = append(slices.Clone(deps), gated...)
		}
		cached := !isMissing[s.CacheKey]
		if !cached {
			gr.UnbuiltSteps++
		}
		ref := &pb.ArtifactRef{StepName: s.Name, Kind: stepKinds[s.Kind], CacheKey: keys[s.Index()]}
		info := &pb.StepInfo{Name: s.Name, Kind: ref.Kind, CacheKey: ref.CacheKey, Cached: cached, DependsOn: names}
		if s.Chunk != nil {
			info.Ref, info.Commit = s.Chunk.Ref, s.Chunk.Commit
		}
		gr.Steps = append(gr.Steps, info)
		state := pb.StepState_STEP_STATE_WAITING
		if cached {
			state = pb.StepState_STEP_STATE_FINISHED
		}
		b.steps[s.Name] = &pb.StepStatus{Step: ref, State: state}
		if old := replayed[s.Name]; cached && old != nil && old.State == pb.StepState_STEP_STATE_FINISHED {
			b.steps[s.Name] = old // keep who built it in this build
		}
		if m := finishedMeanwhile[s.Name]; m != nil {
			// Started before a restart, finished while the controller was
			// down: tell the build's followers, as if it had been heard.
			sf := finishedEvent(ref, m)
			st := replayed[s.Name]
			st.State, st.Worker, st.Log, st.Duration = pb.StepState_STEP_STATE_FINISHED, sf.Worker, sf.Log, sf.Duration
			b.steps[s.Name] = st
			catchUp = append(catchUp, &pb.BuildEvent{Event: &pb.BuildEvent_StepFinished{StepFinished: sf}})
		}
		b.stepOrder = append(b.stepOrder, s.Name)
		spec := scheduler.TaskSpec{
			Key: ref.CacheKey, Name: s.Name, Deps: deps, Cached: cached,
			Platform: scheduler.Platform{Arch: s.Arch, Tags: b.req.WorkerTags},
			Duration: c.expected(s),
			Payload:  &task{step: s, plan: p, ref: ref, staging: inputs},
			Inputs:   inputs,
		}
		if old := replayed[s.Name]; !cached && old != nil && old.State == pb.StepState_STEP_STATE_RUNNING && c.awaiting(old.Worker) {
			// Running on a worker when the controller stopped: wait for
			// that worker to say what became of it rather than run it
			// again.
			spec.AwaitWorker = old.Worker
			b.steps[s.Name] = old
		}
		specs = append(specs, spec)
		if !slices.Contains(p.checks, s) {
			continue
		}
		base, haveBase := bases[s]
		check, cerr := c.checkSpec(p, s, base, haveBase, inputs, spec.Platform)
		if cerr != nil {
			c.endBuild(b, pb.BuildState_BUILD_STATE_FAILED, &pb.BuildEvent{Event: &pb.BuildEvent_BuildFailed{BuildFailed: &pb.BuildFailed{Reason: cerr.Error(), StepName: s.Name}}})
			return
		}
		cref := check.Payload.(*task).ref
		gr.Steps = append(gr.Steps, &pb.StepInfo{Name: cref.StepName, Kind: cref.Kind, CacheKey: cref.CacheKey, Cached: check.Cached, DependsOn: []string{s.Name}})
		cstate := pb.StepState_STEP_STATE_WAITING
		if check.Cached {
			cstate = pb.StepState_STEP_STATE_FINISHED
		} else {
			gr.UnbuiltSteps++
		}
		b.steps[cref.StepName] = &pb.StepStatus{Step: cref, State: cstate}
		b.stepOrder = append(b.stepOrder, cref.StepName)
		specs = append(specs, check)
	}
	gr.TotalSteps = int32(len(gr.Steps))
	b.state = pb.BuildState_BUILD_STATE_RUNNING
	c.save(b)
	// A build resumed after a restart already told its followers its graph.
	if !b.log.has(func(ev *pb.BuildEvent) bool { return ev.GetGraphResolved() != nil }) {
		b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_GraphResolved{GraphResolved: gr}})
		c.notifyBuild(notify.BuildStarted, b, "", nil)
	}
	for _, ev := range catchUp {
		b.log.publish(ev)
	}
	c.log.Info("build resolved", "build", b.id, "steps", gr.TotalSteps, "unbuilt", gr.UnbuiltSteps, "took", c.cfg.Clock.Now().Sub(started))
	events, err := c.sched.AddBuild(b.id, specs, b.req.KeepGoing)
	if err != nil {
		c.endBuild(b, pb.BuildState_BUILD_STATE_FAILED, &pb.BuildEvent{Event: &pb.BuildEvent_BuildFailed{BuildFailed: &pb.BuildFailed{Reason: err.Error()}}})
		return
	}
	c.apply(events)
	c.dispatch()
}

// stagedInputs are the cache keys of the artifacts a worker downloads to
// run s: a chunk's or system's whole staging closure (every chunk it
// stages, in build order), a stratum's members. The scheduler prefers the
// worker that already holds most of them, and a job lists them. They are
// yielded from sets rather than listed: every step's list at once would
// cost memory quadratic in the graph.
func stagedInputs(sets *definitions.StagingSets, s *definitions.Step, keys []string) iter.Seq[string] {
	if s.Kind == definitions.KindStratum {
		members := make([]string, len(s.Deps))
		for i, d := range s.Deps {
			members[i] = keys[d.Index()]
		}
		return slices.Values(members)
	}
	return func(yield func(string) bool) {
		for d := range sets.Staging(s) {
			if !yield(keys[d.Index()]) {
				return
			}
		}
	}
}

// gatedDeps are the checks of s's dependencies that the controller
// requires to pass before s is built.
func gatedDeps(p *plan, s *definitions.Step) []string {
	var out []string
	for _, d := range s.Deps {
		if p.gated[d] {
			out = append(out, checkKey(d.CacheKey.String()))
		}
	}
	return out
}

// awaiting reports whether steps that ran on worker before a restart
// should wait for it: it is connected, or may still reconnect within the
// resume grace. Called with c.mu held.
func (c *Controller) awaiting(worker string) bool {
	return worker != "" && (c.sessions[worker] != nil || c.cfg.Clock.Now().Before(c.resumeUntil))
}

// reconcileAll looks again at every connected worker's latest snapshot.
// Called with c.mu held.
func (c *Controller) reconcileAll() {
	for _, s := range c.sessions {
		if s.last != nil {
			c.reconcile(s, s.last)
		}
	}
	c.dispatch()
}

// cancelBuild cancels a build wherever it is in its life.
func (c *Controller) cancelBuild(id, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.builds[id]
	if b == nil || !b.live() {
		return
	}
	if events := c.sched.CancelBuild(id, reason); events != nil {
		c.apply(events)
		c.dispatch()
		return
	}
	// Not scheduled yet: still resolving.
	c.endBuild(b, pb.BuildState_BUILD_STATE_CANCELLED, &pb.BuildEvent{Event: &pb.BuildEvent_BuildCancelled{BuildCancelled: &pb.BuildCancelled{Reason: reason}}})
}

// follow counts a build's followers. When the last one leaves a build that
// was not detached, the build is cancelled after the grace period unless
// someone attaches again.
func (c *Controller) follow(b *build, delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b.followers += delta
	if b.graceTimer != nil {
		b.graceTimer.Stop()
		b.graceTimer = nil
	}
	if b.followers > 0 || b.req.Detach || !b.live() {
		return
	}
	c.log.Info("initiator disconnected; build will be cancelled unless someone attaches", "build", b.id, "grace", c.cfg.DisconnectGrace)
	c.startGrace(b)
}

// startGrace cancels b after the grace period unless someone follows it
// by then. Called with c.mu held.
func (c *Controller) startGrace(b *build) {
	if b.req.Detach {
		return
	}
	b.graceTimer = c.cfg.Clock.AfterFunc(c.cfg.DisconnectGrace, func() {
		c.mu.Lock()
		gone := b.followers == 0
		c.mu.Unlock()
		if gone {
			c.cancelBuild(b.id, "the initiator disconnected and nobody re-attached")
		}
	})
}

// finishedWhileDown finds, for a build resumed after a restart, the steps
// its history shows started but not ended whose artifacts are now in the
// cache: they finished while the controller was down. It returns their
// manifests by step name (fetched outside the lock; there are few).
func (c *Controller) finishedWhileDown(ctx context.Context, b *build, p *plan, isMissing map[digest.CacheKey]bool) map[string]*pb.Manifest {
	c.mu.Lock()
	var started []*definitions.Step
	for _, s := range p.steps {
		st := b.steps[s.Name]
		if !isMissing[s.CacheKey] && st != nil && (st.State == pb.StepState_STEP_STATE_RUNNING || st.State == pb.StepState_STEP_STATE_READY) && st.Attempts > 0 {
			started = append(started, s)
		}
	}
	c.mu.Unlock()
	out := map[string]*pb.Manifest{}
	for _, s := range started {
		m, err := c.cfg.Cache.GetManifest(ctx, s.CacheKey)
		if err != nil {
			c.log.Warn("cannot read the manifest of a step that finished during a restart", "step", s.Name, "error", err)
			m = &pb.Manifest{CacheKey: s.CacheKey.String()}
		}
		out[s.Name] = m
	}
	return out
}

// finishedEvent describes a step's artifact from its manifest.
func finishedEvent(ref *pb.ArtifactRef, m *pb.Manifest) *pb.StepFinished {
	sf := &pb.StepFinished{Step: ref, Worker: m.Worker}
	if m.Started != nil && m.Finished != nil {
		sf.Duration = durationpb.New(m.Finished.AsTime().Sub(m.Started.AsTime()))
	}
	for _, f := range m.Files {
		if f.Role == pb.FileRole_FILE_ROLE_LOG {
			sf.Log = f.Digest
		}
	}
	return sf
}
