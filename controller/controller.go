package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/definitions"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/scheduler"
)

// ArtifactCache is what the controller asks of the shared cache: which
// steps' artifacts are already there.
type ArtifactCache interface {
	// MissingCacheKeys returns the keys among keys that have no manifest.
	MissingCacheKeys(ctx context.Context, keys []string) ([]string, error)
}

// Config holds the controller's collaborators and tunables.
type Config struct {
	Definitions Definitions
	Cache       ArtifactCache
	// Aliases map repo aliases in definitions onto URLs workers can fetch.
	Aliases *definitions.RepoAliases
	// Policy orders ready steps; nil means critical path.
	Policy scheduler.Policy
	// MaxAttempts bounds setup-failure retries of one step (default 3).
	MaxAttempts int
	// StepTimeout is the longest a step may run (default 6h: generous,
	// because a compiler or kernel build takes hours on slow machines).
	StepTimeout time.Duration
	// WorkerLease is how long a worker may stay silent before its jobs are
	// requeued elsewhere (default 30s); workers report at a third of it.
	WorkerLease time.Duration
	// DisconnectGrace is how long a build keeps running after its initiator
	// disconnects without --detach before it is cancelled (default 30s), so
	// a brief network blip does not throw away a long build.
	DisconnectGrace time.Duration
	Logger          hclog.Logger
}

// Expected durations until history-based estimates exist: they only need
// to rank chunks above the trivial stratum and system steps.
var defaultDurations = map[definitions.Kind]time.Duration{
	definitions.KindChunk:   time.Minute,
	definitions.KindStratum: time.Second,
	definitions.KindSystem:  30 * time.Second,
}

// maxEndedBuilds bounds how many finished builds stay listed in memory.
const maxEndedBuilds = 1000

// Controller is the coordinator; register it on a gRPC server with
// Register.
type Controller struct {
	cfg Config
	log hclog.Logger

	mu       sync.Mutex
	sched    *scheduler.Scheduler
	builds   map[string]*build
	order    []string // build ids, oldest first
	sessions map[string]*session
}

// New makes a controller.
func New(cfg Config) *Controller {
	if cfg.Policy == nil {
		cfg.Policy = scheduler.CriticalPath{}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 6 * time.Hour
	}
	if cfg.WorkerLease <= 0 {
		cfg.WorkerLease = 30 * time.Second
	}
	if cfg.DisconnectGrace <= 0 {
		cfg.DisconnectGrace = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Aliases == nil {
		cfg.Aliases = definitions.NewRepoAliases("")
	}
	return &Controller{
		cfg:      cfg,
		log:      cfg.Logger,
		sched:    scheduler.New(cfg.Policy, scheduler.Options{MaxAttempts: cfg.MaxAttempts, JobIDPrefix: randomID(4) + "-"}),
		builds:   map[string]*build{},
		sessions: map[string]*session{},
	}
}

// Register adds the controller's services to a gRPC server.
func (c *Controller) Register(s *grpc.Server) {
	pb.RegisterBuildServiceServer(s, &buildService{c: c})
	pb.RegisterWorkerServiceServer(s, &workerService{c: c})
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// build is the controller's record of one build.
type build struct {
	id      string
	req     *pb.StartBuild
	log     *eventLog
	created time.Time
	ended   time.Time
	state   pb.BuildState
	// cancel stops the resolution of a build that is not scheduled yet.
	cancel context.CancelFunc
	plan   *plan
	// steps holds each step's status, by name, in build order via order.
	steps     map[string]*pb.StepStatus
	stepOrder []string
	// lastFailure is the step whose failure ended the build, if one did.
	lastFailure *pb.StepFailed
	followers   int
	graceTimer  *time.Timer
}

// task is the controller's payload on a scheduler task.
type task struct {
	job *pb.Job
	ref *pb.ArtifactRef
	// Set when a worker reports the step done.
	worker   string
	duration time.Duration
	log      *pb.Digest
}

func (b *build) summary() *pb.BuildSummary {
	s := &pb.BuildSummary{BuildId: b.id, State: b.state, Request: b.req, Created: timestamppb.New(b.created)}
	if !b.ended.IsZero() {
		s.Ended = timestamppb.New(b.ended)
	}
	s.TotalSteps = int32(len(b.stepOrder))
	for _, st := range b.steps {
		switch st.State {
		case pb.StepState_STEP_STATE_FINISHED:
			s.FinishedSteps++
		case pb.StepState_STEP_STATE_FAILED:
			s.FailedSteps++
		}
	}
	return s
}

func (b *build) live() bool {
	return b.state == pb.BuildState_BUILD_STATE_RESOLVING || b.state == pb.BuildState_BUILD_STATE_RUNNING
}

// apply turns scheduler events into build events and worker cancellations.
// Called with c.mu held.
func (c *Controller) apply(events []scheduler.Event) {
	for _, ev := range events {
		b := c.builds[ev.Build.ID]
		if b == nil {
			continue
		}
		for _, cn := range ev.Cancel {
			if s := c.sessions[cn.Worker]; s != nil {
				s.send(&pb.WorkResponse{CancelJobIds: []string{cn.JobID}})
			}
		}
		switch ev.Kind {
		case scheduler.StepStarted:
			t := ev.Task.Payload.(*task)
			b.setStep(t.ref.StepName, pb.StepState_STEP_STATE_RUNNING, ev.Task.Worker(), int32(ev.Task.Attempts()), "")
			b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepStarted{StepStarted: &pb.StepStarted{
				Step: t.ref, Worker: ev.Task.Worker(), Attempt: int32(ev.Task.Attempts())}}})
		case scheduler.StepFinished:
			t := ev.Task.Payload.(*task)
			st := b.setStep(t.ref.StepName, pb.StepState_STEP_STATE_FINISHED, t.worker, int32(ev.Task.Attempts()), "")
			st.Log = t.log
			b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepFinished{StepFinished: &pb.StepFinished{
				Step: t.ref, Worker: t.worker, Duration: durationpb.New(t.duration), Log: t.log}}})
		case scheduler.StepFailed:
			c.stepFailed(b, ev)
		case scheduler.BuildSucceeded:
			refs := make([]*pb.ArtifactRef, len(b.plan.targets))
			for i, s := range b.plan.targets {
				refs[i] = &pb.ArtifactRef{StepName: s.Name, Kind: stepKinds[s.Kind], CacheKey: s.CacheKey}
			}
			c.endBuild(b, pb.BuildState_BUILD_STATE_SUCCEEDED, &pb.BuildEvent{Event: &pb.BuildEvent_BuildFinished{BuildFinished: &pb.BuildFinished{Artifacts: refs}}})
		case scheduler.BuildFailed:
			bf := &pb.BuildFailed{Reason: ev.Reason}
			if f := b.lastFailure; f != nil {
				bf.StepName, bf.ExitCode = f.Step.StepName, f.ExitCode
			}
			c.endBuild(b, pb.BuildState_BUILD_STATE_FAILED, &pb.BuildEvent{Event: &pb.BuildEvent_BuildFailed{BuildFailed: bf}})
		case scheduler.BuildCancelled:
			c.endBuild(b, pb.BuildState_BUILD_STATE_CANCELLED, &pb.BuildEvent{Event: &pb.BuildEvent_BuildCancelled{BuildCancelled: &pb.BuildCancelled{Reason: ev.Reason}}})
		}
	}
}

func (c *Controller) stepFailed(b *build, ev scheduler.Event) {
	t := ev.Task.Payload.(*task)
	f := ev.Failure
	kind := pb.FailureKind_FAILURE_KIND_SETUP
	if f.Kind == scheduler.BuildFailure {
		kind = pb.FailureKind_FAILURE_KIND_BUILD
	}
	sf := &pb.StepFailed{Step: t.ref, Worker: f.Worker, Kind: kind, Reason: f.Reason, ExitCode: int32(f.ExitCode),
		Attempt: int32(ev.Task.Attempts()), WillRetry: ev.WillRetry, Log: t.log}
	state := pb.StepState_STEP_STATE_FAILED
	if ev.WillRetry {
		state = pb.StepState_STEP_STATE_READY
	} else {
		b.lastFailure = sf
	}
	b.setStep(t.ref.StepName, state, f.Worker, int32(ev.Task.Attempts()), f.Reason).Log = t.log
	b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepFailed{StepFailed: sf}})
	c.log.Warn("step failed", "build", b.id, "step", t.ref.StepName, "worker", f.Worker, "reason", f.Reason, "will_retry", ev.WillRetry)
}

func (b *build) setStep(name string, state pb.StepState, worker string, attempts int32, reason string) *pb.StepStatus {
	st := b.steps[name]
	if st == nil {
		return &pb.StepStatus{}
	}
	st.State, st.Worker, st.Attempts, st.Reason = state, worker, attempts, reason
	return st
}

// endBuild records a build's end and publishes its last event. Called with
// c.mu held.
func (c *Controller) endBuild(b *build, state pb.BuildState, ev *pb.BuildEvent) {
	if !b.live() {
		return
	}
	b.state = state
	b.ended = time.Now()
	if b.cancel != nil {
		b.cancel()
	}
	if b.graceTimer != nil {
		b.graceTimer.Stop()
	}
	for _, st := range b.steps {
		if st.State == pb.StepState_STEP_STATE_WAITING || st.State == pb.StepState_STEP_STATE_READY {
			st.State = pb.StepState_STEP_STATE_SKIPPED
		}
	}
	b.log.publish(ev)
	c.log.Info("build ended", "build", b.id, "state", state.String(), "steps", len(b.stepOrder))
	c.forgetOldBuilds()
}

// forgetOldBuilds drops the oldest ended builds beyond maxEndedBuilds.
func (c *Controller) forgetOldBuilds() {
	ended := 0
	for _, id := range c.order {
		if !c.builds[id].live() {
			ended++
		}
	}
	for i := 0; ended > maxEndedBuilds && i < len(c.order); {
		if b := c.builds[c.order[i]]; !b.live() {
			delete(c.builds, b.id)
			c.order = append(c.order[:i], c.order[i+1:]...)
			ended--
			continue
		}
		i++
	}
}

// dispatch starts every ready step a free worker can take. Called with c.mu
// held.
func (c *Controller) dispatch() {
	assignments, events := c.sched.Dispatch()
	for _, a := range assignments {
		t := a.Task.Payload.(*task)
		job := proto.Clone(t.job).(*pb.Job)
		job.JobId = a.JobID
		s := c.sessions[a.Worker]
		s.jobs[a.JobID] = true
		s.send(&pb.WorkResponse{Start: []*pb.Job{job}})
		c.log.Debug("step assigned", "step", t.ref.StepName, "worker", a.Worker, "job", a.JobID, "attempt", a.Attempt)
	}
	c.apply(events)
}
