package controller

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"iter"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/clock"
	"distbuild/definitions"
	"distbuild/digest"
	"distbuild/internal/observability"
	"distbuild/manifestsig"
	"distbuild/notify"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/provision"
	"distbuild/scheduler"
)

// ArtifactCache is what the controller asks of the shared cache: which
// steps' artifacts are already there.
// The trove's *artifactcache.Client is one.
type ArtifactCache interface {
	// FindMissing returns the blobs and the cache keys among those asked
	// about that the cache does not hold (the controller asks only about
	// keys).
	FindMissing(ctx context.Context, blobs []digest.Digest, keys []digest.CacheKey) ([]digest.Digest, []digest.CacheKey, error)
	// GetManifest returns the manifest stored under a cache key.
	GetManifest(ctx context.Context, key digest.CacheKey) (*pb.Manifest, error)
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
	// ResumeGrace is how long, after a restart, the steps that were running
	// wait for their workers to reconnect and say what became of them
	// (default WorkerLease): a step still running is adopted and one that
	// finished meanwhile is credited, rather than run again elsewhere.
	ResumeGrace time.Duration
	// GrantKey signs the attempt grant in every job, so a trove that knows
	// the matching public key stores a manifest only from the worker the
	// step was given to. Nil sends unsigned grants, which still order
	// attempts.
	GrantKey ed25519.PrivateKey
	// StateFile is the bbolt database that keeps builds and their events
	// across restarts; empty keeps them in memory only.
	StateFile string
	// StateBackupInterval is how often a rolling backup of StateFile is
	// written to the backups directory beside it (default 10m; one more
	// at Close), for `controller state repair` to restore.
	StateBackupInterval time.Duration
	// Clock times leases, grace periods and backups, and stamps builds;
	// nil is the system clock. Tests pass a fake one to run in virtual
	// time.
	Clock clock.Clock
	// OnStateError is told when the state database cannot be written; the
	// daemon stops rather than promise what it cannot keep. Nil logs it.
	OnStateError func(error)
	// Notify, when set, tells hooks, webhooks and e-mail about farm
	// events (package notify); its pending deliveries are kept in
	// StateFile. Its database, clock, metrics and logger are the
	// controller's.
	Notify *notify.Config
	// Scale, when set, grows and shrinks the farm through an operator's
	// command (package provision).
	Scale *provision.Config
	// RequireReproducible holds patterns (path.Match syntax, e.g.
	// "gcc*") of step names that must be reproducible: each matching step
	// is built again on a second worker and compared before anything that
	// depends on it is built, and a difference fails the build.
	RequireReproducible []string
	// DashboardURL is where people reach the dashboard (e.g.
	// http://controller.example:7879), for the links in notifications;
	// empty leaves them out.
	DashboardURL string
	// Metrics receives the controller's Prometheus metrics; nil keeps
	// them unexported.
	Metrics prometheus.Registerer
	Logger  hclog.Logger
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

	journal *journal
	metrics *metrics
	// notifier delivers farm events; nil without Config.Notify.
	notifier *notify.Dispatcher
	// scaler runs the provisioning command; nil without Config.Scale.
	scaler *scaler

	mu    sync.Mutex
	sched *scheduler.Scheduler
	// durations are the expected run times of steps by name, learnt from
	// the steps that ran: the critical-path policy needs them to rank a
	// compiler above a small library.
	durations map[string]time.Duration
	// checks holds the latest reproducibility check of each cache key
	// checked (see checks.go).
	checks map[string]*pb.CheckResult
	// checksAwaitWorkers is set once checks that no connected worker can
	// run are left to wait out the resume grace, while workers reconnect.
	checksAwaitWorkers bool
	builds             map[string]*build
	order              []string // build ids, oldest first
	sessions           map[string]*session
	// restoring counts the builds resumed after a restart that are still
	// being resolved: until they are, a job a worker reports that this
	// controller does not know may be one of theirs, so it is neither
	// cancelled nor acknowledged.
	restoring int
	// resumeUntil ends the wait for the workers of steps that were running
	// before a restart (Config.ResumeGrace).
	resumeUntil time.Time
	// lastGrant is the sequence of the latest attempt grant.
	lastGrant uint64
	// stopping is set by Stop.
	stopping bool
}

// New makes a controller. With a state file, it reloads the builds it
// knew and resumes those that were still running: their definitions are
// resolved again, and steps that had finished are found in the cache, so no
// finished step runs twice.
func New(cfg Config) (*Controller, error) {
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
	if cfg.ResumeGrace <= 0 {
		cfg.ResumeGrace = cfg.WorkerLease
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.Aliases == nil {
		cfg.Aliases = definitions.NewRepoAliases("")
	}
	for _, glob := range cfg.RequireReproducible {
		if _, err := path.Match(glob, ""); err != nil {
			return nil, fmt.Errorf("--require-reproducible %q: %w", glob, err)
		}
	}
	if cfg.OnStateError == nil {
		log := cfg.Logger
		cfg.OnStateError = func(err error) { log.Error("builds are not being saved", "error", err) }
	}
	c := &Controller{
		cfg: cfg,
		log: cfg.Logger,
		sched: scheduler.New(cfg.Policy, scheduler.Options{MaxAttempts: cfg.MaxAttempts, JobIDPrefix: randomID(4) + "-",
			Now: cfg.Clock.Now}),
		builds:   map[string]*build{},
		sessions: map[string]*session{},
	}
	c.metrics = newMetrics(observability.Registerer(cfg.Metrics), c)
	j, err := openJournal(cfg, c.metrics.eventsWritten)
	if err != nil {
		return nil, err
	}
	c.journal = j
	if cfg.Notify != nil {
		nc := *cfg.Notify
		nc.DB, nc.Clock, nc.Metrics, nc.Logger = j.db, cfg.Clock, cfg.Metrics, cfg.Logger.Named("notify")
		if c.notifier, err = notify.Open(nc); err != nil {
			j.close()
			return nil, err
		}
	}
	if err := c.restore(); err != nil {
		c.closeNotifier()
		j.close()
		return nil, err
	}
	if cfg.Scale != nil {
		c.startScaler(*cfg.Scale)
	}
	return c, nil
}

// Stop tells the controller it is shutting down, before its gRPC server
// stops: the workers' streams that end from then on are not recorded as
// lost workers, so their running steps stay running in the state database
// and the next controller waits for those workers to report them.
func (c *Controller) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
}

// Close stops notifying and writing state; call it after the gRPC server
// has stopped. Notifications not yet delivered stay pending for the next
// start.
func (c *Controller) Close() error {
	c.stopScaler()
	c.closeNotifier()
	return c.journal.close()
}

func (c *Controller) closeNotifier() {
	if c.notifier != nil {
		c.notifier.Close()
	}
}

// restore reloads saved builds and resumes the live ones.
func (c *Controller) restore() error {
	stored, err := c.journal.load()
	if err != nil {
		return fmt.Errorf("reading the state database: %w", err)
	}
	if c.durations, err = c.journal.loadDurations(); err != nil {
		return fmt.Errorf("reading the state database: %w", err)
	}
	if c.checks, err = c.journal.loadChecks(); err != nil {
		return fmt.Errorf("reading the state database: %w", err)
	}
	slices.SortFunc(stored, func(a, b storedBuild) int { return a.summary.Created.AsTime().Compare(b.summary.Created.AsTime()) })
	resumed := 0
	for _, sb := range stored {
		sum := sb.summary
		b := &build{id: sum.BuildId, req: sum.Request, user: sum.SubmittedBy, created: sum.Created.AsTime(), state: sum.State, steps: map[string]*pb.StepStatus{}}
		if sum.Ended != nil {
			b.ended = sum.Ended.AsTime()
		}
		b.log = newEventLog(b.id, c.journal, sb.events)
		b.replay(sb.events)
		c.builds[b.id] = b
		c.order = append(c.order, b.id)
		if b.live() {
			b.resumed = true
			resumed++
		}
	}
	if len(stored) > 0 {
		c.log.Info("restored builds from the state database", "builds", len(stored), "resumed", resumed)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restoring = resumed
	if resumed > 0 {
		// Only steps of resumed builds wait for their workers.
		c.resumeUntil = c.cfg.Clock.Now().Add(c.cfg.ResumeGrace)
		c.cfg.Clock.AfterFunc(c.cfg.ResumeGrace, c.stopAwaitingWorkers)
	}
	for _, id := range c.order {
		if b := c.builds[id]; b.live() {
			ctx, cancel := context.WithCancel(context.Background())
			b.cancel = cancel
			go c.resolve(ctx, b)
			// Their initiators went with the old process: give them the
			// grace period to attach again.
			c.startGrace(b)
		}
	}
	return nil
}

// stopAwaitingWorkers ends the resume grace: steps still waiting for the
// worker that ran them before the restart are dispatched again.
func (c *Controller) stopAwaitingWorkers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.sched.Held("")
	for _, k := range held {
		c.sched.Unhold(k)
	}
	if len(held) > 0 {
		c.log.Warn("workers did not come back after the restart; their steps run again elsewhere", "steps", len(held), "grace", c.cfg.ResumeGrace)
		c.dispatch()
	}
}

// replay rebuilds step statuses from a build's history, so Status answers
// for builds from before a restart.
func (b *build) replay(events []*pb.BuildEvent) {
	for _, ev := range events {
		switch e := ev.Event.(type) {
		case *pb.BuildEvent_GraphResolved:
			b.steps, b.stepOrder = map[string]*pb.StepStatus{}, nil
			for _, st := range e.GraphResolved.Steps {
				state := pb.StepState_STEP_STATE_WAITING
				if st.Cached {
					state = pb.StepState_STEP_STATE_FINISHED
				}
				b.steps[st.Name] = &pb.StepStatus{Step: &pb.ArtifactRef{StepName: st.Name, Kind: st.Kind, CacheKey: st.CacheKey}, State: state}
				b.stepOrder = append(b.stepOrder, st.Name)
			}
		case *pb.BuildEvent_StepStarted:
			b.setStep(e.StepStarted.Step.StepName, pb.StepState_STEP_STATE_RUNNING, e.StepStarted.Worker, e.StepStarted.Attempt, "")
		case *pb.BuildEvent_StepFinished:
			sf := e.StepFinished
			recordEnd(b.setStep(sf.Step.StepName, pb.StepState_STEP_STATE_FINISHED, sf.Worker, b.steps[sf.Step.StepName].GetAttempts(), ""), sf.Log, sf.Duration, sf.Profile)
		case *pb.BuildEvent_StepFailed:
			f := e.StepFailed
			state := pb.StepState_STEP_STATE_FAILED
			if f.WillRetry {
				state = pb.StepState_STEP_STATE_READY
			}
			recordEnd(b.setStep(f.Step.StepName, state, f.Worker, f.Attempt, f.Reason), f.Log, f.Profile.GetDuration(), f.Profile)
		}
	}
	if !b.live() {
		for _, st := range b.steps {
			switch {
			case st.State == pb.StepState_STEP_STATE_RUNNING && b.state == pb.BuildState_BUILD_STATE_CANCELLED:
				st.State = pb.StepState_STEP_STATE_CANCELLED
			case st.State != pb.StepState_STEP_STATE_FINISHED && st.State != pb.StepState_STEP_STATE_FAILED && st.State != pb.StepState_STEP_STATE_CANCELLED:
				st.State = pb.StepState_STEP_STATE_SKIPPED
			}
		}
	}
}

// historyWeight is how much the latest run counts in a step's expected
// duration: recent runs matter most, but one odd run does not dominate.
const historyWeight = 0.3

// learnDuration updates a step's expected duration from a run. Called with
// c.mu held.
func (c *Controller) learnDuration(step string, took time.Duration) {
	if took <= 0 {
		return
	}
	est, known := c.durations[step]
	if known {
		est = time.Duration(historyWeight*float64(took) + (1-historyWeight)*float64(est))
	} else {
		est = took
	}
	c.durations[step] = est
	c.journal.enqueue(journalEntry{step: step, estimate: est})
}

// expected is a step's expected duration: learnt, or a default by kind.
// Called with c.mu held.
func (c *Controller) expected(s *definitions.Step) time.Duration {
	if d, ok := c.durations[s.Name]; ok {
		return d
	}
	return defaultDurations[s.Kind]
}

// save queues the build's record for the state database. Called with c.mu
// held, before the events that depend on it are published.
func (c *Controller) save(b *build) {
	c.journal.enqueue(journalEntry{summary: b.summary()})
}

// Register adds all the controller's services to one gRPC server, for a
// controller that serves initiators and workers on one listener.
func (c *Controller) Register(s *grpc.Server) {
	c.RegisterInitiatorServices(s)
	c.RegisterWorkerServices(s)
}

// RegisterInitiatorServices adds the services initiators use (builds,
// their events and status), for a listener that faces developers.
func (c *Controller) RegisterInitiatorServices(s *grpc.Server) {
	pb.RegisterBuildServiceServer(s, &buildService{c: c})
}

// RegisterWorkerServices adds the service workers dial, for a listener
// that faces the build machines.
func (c *Controller) RegisterWorkerServices(s *grpc.Server) {
	pb.RegisterWorkerServiceServer(s, &workerService{c: c})
}

// grant makes the attempt grant for a job. Sequences follow the wall clock
// in nanoseconds, and never repeat or go back within one process, so an
// attempt handed out after a restart (which takes longer than any clock
// step NTP makes) still outranks every attempt from before it without
// another write to the state database on the dispatch path. Called with
// c.mu held.
func (c *Controller) grant(jobID, cacheKey, worker string) *pb.AttemptGrant {
	c.lastGrant = max(c.lastGrant+1, uint64(c.cfg.Clock.Now().UnixNano()))
	g := &pb.AttemptGrant{JobId: jobID, CacheKey: cacheKey, Worker: worker, Sequence: c.lastGrant}
	if c.cfg.GrantKey != nil {
		if err := manifestsig.SignGrant(g, c.cfg.GrantKey); err != nil {
			c.log.Error("cannot sign an attempt grant", "job", jobID, "error", err)
		}
	}
	return g
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// build is the controller's record of one build.
type build struct {
	id  string
	req *pb.StartBuild
	// user is who submitted it, when the controller authenticates users.
	user    string
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
	// lastFailure is the step whose failure ended the build, if one did,
	// and lastFailureTail the last lines it printed.
	lastFailure     *pb.StepFailed
	lastFailureTail []string
	followers       int
	graceTimer      clock.Timer
	// resumed is set for a build restored after a restart until it is
	// resolved again.
	resumed bool
}

// task is the controller's payload on a scheduler task.
type task struct {
	step *definitions.Step
	plan *plan
	ref  *pb.ArtifactRef
	// started is when the current attempt was dispatched.
	started time.Time
	// Set when a worker reports the step done.
	worker   string
	duration time.Duration
	log      *pb.Digest
	// profile is where the last attempt that ended spent its time, as its
	// worker reported it (bounded).
	profile *pb.StepProfile
	// tail is the end of the current attempt's output, for notifications.
	tail logTail
	// check is set when the task checks step's reproducibility rather
	// than builds it.
	check *checkTask
	// staging yields the cache keys of the chunks a chunk or system step
	// stages, in build order: its scheduler inputs.
	staging iter.Seq[string]
}

func (b *build) summary() *pb.BuildSummary {
	s := &pb.BuildSummary{BuildId: b.id, State: b.state, Request: b.req, SubmittedBy: b.user, Created: timestamppb.New(b.created)}
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
		if ev.Kind == scheduler.BuildCancelled {
			c.markCancelled(b, ev.Cancel)
		}
		switch ev.Kind {
		case scheduler.StepStarted:
			t := ev.Task.Payload.(*task)
			b.setStep(t.ref.StepName, pb.StepState_STEP_STATE_RUNNING, ev.Task.Worker(), int32(ev.Task.Attempts()), "")
			b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepStarted{StepStarted: &pb.StepStarted{
				Step: t.ref, Worker: ev.Task.Worker(), Attempt: int32(ev.Task.Attempts())}}})
		case scheduler.StepFinished:
			t := ev.Task.Payload.(*task)
			if t.check == nil {
				c.learnBuilder(t)
			}
			st := b.setStep(t.ref.StepName, pb.StepState_STEP_STATE_FINISHED, t.worker, int32(ev.Task.Attempts()), "")
			sf := &pb.StepFinished{Step: t.ref, Worker: t.worker, Duration: durationpb.New(t.duration), Log: t.log, Profile: t.profile}
			recordEnd(st, sf.Log, sf.Duration, sf.Profile)
			b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepFinished{StepFinished: sf}})
		case scheduler.StepFailed:
			c.stepFailed(b, ev)
		case scheduler.BuildSucceeded:
			refs := make([]*pb.ArtifactRef, len(b.plan.targets))
			for i, s := range b.plan.targets {
				refs[i] = &pb.ArtifactRef{StepName: s.Name, Kind: stepKinds[s.Kind], CacheKey: s.CacheKey.String()}
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
		Attempt: int32(ev.Task.Attempts()), WillRetry: ev.WillRetry, Log: t.log, Profile: t.profile}
	state := pb.StepState_STEP_STATE_FAILED
	var tail []string
	if c.notifier != nil {
		tail = t.tail.lines() // only notifications quote it
	}
	if ev.WillRetry {
		state = pb.StepState_STEP_STATE_READY
	} else {
		b.lastFailure, b.lastFailureTail = sf, tail
	}
	recordEnd(b.setStep(t.ref.StepName, state, f.Worker, int32(ev.Task.Attempts()), f.Reason), t.log, t.profile.GetDuration(), t.profile)
	b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepFailed{StepFailed: sf}})
	event := notify.StepFailed
	if ev.WillRetry {
		event = notify.StepRetried
	}
	c.notifyBuild(event, b, "", failedStep(sf, tail))
	c.log.Warn("step failed", "build", b.id, "step", t.ref.StepName, "worker", f.Worker, "reason", f.Reason, "will_retry", ev.WillRetry)
}

// markCancelled ends the build's running steps as cancelled. The workers
// still upload what the stopped jobs printed; their sessions remember which
// step statuses those logs belong to. Called with c.mu held.
func (c *Controller) markCancelled(b *build, stopped []scheduler.Cancellation) {
	for _, st := range b.steps {
		if st.State == pb.StepState_STEP_STATE_RUNNING {
			st.State = pb.StepState_STEP_STATE_CANCELLED
		}
	}
	for _, cn := range stopped {
		if s := c.sessions[cn.Worker]; s != nil {
			if st := b.steps[s.jobs[cn.JobID]]; st != nil {
				s.cancelled[cn.JobID] = st
			}
		}
	}
}

// recordEnd keeps what an ended attempt left with its step's status: its
// log, how long it ran and where that time went.
func recordEnd(st *pb.StepStatus, log *pb.Digest, took *durationpb.Duration, profile *pb.StepProfile) {
	st.Log, st.Duration, st.Profile = log, took, profile
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
	b.ended = c.cfg.Clock.Now()
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
	c.save(b)
	b.log.publish(ev)
	switch e := ev.Event.(type) {
	case *pb.BuildEvent_BuildFinished:
		c.notifyBuild(notify.BuildSucceeded, b, "", nil)
	case *pb.BuildEvent_BuildFailed:
		c.notifyBuild(notify.BuildFailed, b, e.BuildFailed.Reason, nil)
	case *pb.BuildEvent_BuildCancelled:
		c.notifyBuild(notify.BuildCancelled, b, e.BuildCancelled.Reason, nil)
	}
	c.metrics.buildsEnded.WithLabelValues(stateLabel(state.String(), "BUILD_STATE_")).Inc()
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
	var forgotten []string
	for i := 0; ended > maxEndedBuilds && i < len(c.order); {
		if b := c.builds[c.order[i]]; !b.live() {
			delete(c.builds, b.id)
			c.order = append(c.order[:i], c.order[i+1:]...)
			forgotten = append(forgotten, b.id)
			ended--
			continue
		}
		i++
	}
	c.journal.forget(forgotten)
}

// dispatch starts every ready step a free worker can take. Called with c.mu
// held.
func (c *Controller) dispatch() {
	assignments, events := c.sched.Dispatch()
	var now time.Time
	if len(assignments) > 0 {
		now = c.cfg.Clock.Now()
	}
	for _, a := range assignments {
		t := a.Task.Payload.(*task)
		t.started, t.tail = now, logTail{}
		c.metrics.stepsStarted.Inc()
		if ready := a.Task.ReadySince(); !ready.IsZero() {
			c.metrics.readyToStart.Observe(now.Sub(ready).Seconds())
		}
		job := c.jobFor(t)
		job.JobId = a.JobID
		if t.check != nil {
			job.Check = &pb.CheckJob{BuiltBy: t.check.builtBy}
		} else {
			job.Grant = c.grant(a.JobID, t.ref.CacheKey, a.Worker)
		}
		job.Origin = t.plan.origin(t.step)
		s := c.sessions[a.Worker]
		s.jobs[a.JobID] = t.ref.StepName
		s.send(&pb.WorkResponse{Start: []*pb.Job{job}})
		c.log.Debug("step assigned", "step", t.ref.StepName, "worker", a.Worker, "job", a.JobID, "attempt", a.Attempt)
	}
	c.apply(events)
	c.giveUpUnrunnableChecks()
}
