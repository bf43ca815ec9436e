package controller_test

import (
	"context"
	"distbuild/internal/observability"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/artifactcache"
	"distbuild/clock"
	"distbuild/controller"
	"distbuild/definitions"
	"distbuild/digest"
	"distbuild/gitmirror"
	"distbuild/internal/gittest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/trove"
	"distbuild/trove/trovetest"
)

// farm is a controller with a real artifact cache and real git mirrors,
// serving gRPC on a loopback port.
type farm struct {
	t     testing.TB
	cache *artifactcache.Client
	cfg   controller.Config
	// clock is the controller's: leases, grace periods and backups run in
	// virtual time, moved on by the tests that need them to pass.
	clock    *clock.Fake
	opts     []grpc.ServerOption // e.g. authentication interceptors
	addr     string
	ctl      *controller.Controller
	srv      *grpc.Server
	conn     *grpc.ClientConn
	builds   pb.BuildServiceClient
	defsRepo string // path of the definitions repository
	commit   string
}

func testLogger(t testing.TB) hclog.Logger {
	if _, bench := t.(*testing.B); bench {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Info})
}

func startFarm(t testing.TB, lease time.Duration) *farm {
	return startFarmWith(t, lease, testDefinitions)
}

func startFarmWith(t testing.TB, lease time.Duration, defs map[string]string) *farm {
	t.Helper()
	return startFarmOn(t, lease, defs, trove.Config{})
}

// startFarmOn starts a farm whose trove has troveCfg (e.g. a small size
// limit).
func startFarmOn(t testing.TB, lease time.Duration, defs map[string]string, troveCfg trove.Config) *farm {
	t.Helper()
	troveCfg.Logger = testLogger(t).Named("trove")
	cache := trovetest.Client(t, trovetest.Start(t, troveCfg))
	mirrors, err := gitmirror.New(t.TempDir(), testLogger(t).Named("git"))
	if err != nil {
		t.Fatal(err)
	}
	aliases := definitions.NewRepoAliases("file:///nonexistent/git")
	if err := aliases.Set("test=file:///nonexistent/%s"); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Now())
	cfg := controller.Config{
		Definitions:     controller.GitDefinitions{Mirrors: mirrors},
		Cache:           cache,
		Aliases:         aliases,
		WorkerLease:     lease,
		DisconnectGrace: 200 * time.Millisecond,
		ResumeGrace:     200 * time.Millisecond,
		Clock:           clk,
		StateFile:       filepath.Join(t.TempDir(), "state.db"),
		Logger:          testLogger(t).Named("controller"),
	}
	f := &farm{t: t, cache: cache, cfg: cfg, clock: clk}
	f.serve()
	t.Cleanup(f.stopController)
	f.defsRepo = t.TempDir()
	f.commit = f.commitDefinitions(defs)
	return f
}

// testDefinitions is a small system: a bootstrap stratum with two chunks
// and a stratum of two chunks built on it.
var testDefinitions = map[string]string{
	"VERSION": "version: 8\n",
	"strata/base.morph": `name: base
kind: stratum
chunks:
- name: compiler
  repo: test:compiler
  ref: 1111111111111111111111111111111111111111
  build-system: manual
  build-mode: bootstrap
- name: libc
  repo: test:libc
  ref: 2222222222222222222222222222222222222222
  build-system: manual
  build-mode: bootstrap
  build-depends: [compiler]
`,
	"strata/apps.morph": `name: apps
kind: stratum
build-depends:
- morph: strata/base.morph
chunks:
- name: hello
  repo: test:hello
  ref: 3333333333333333333333333333333333333333
  build-system: manual
- name: goodbye
  repo: test:goodbye
  ref: 4444444444444444444444444444444444444444
  build-system: manual
`,
	"systems/test.morph": `name: test-system
kind: system
arch: x86_64
strata:
- morph: strata/base.morph
- morph: strata/apps.morph
`,
}

// commitDefinitions writes files into the definitions repository and
// commits them, returning the commit.
func (f *farm) commitDefinitions(files map[string]string) string {
	f.t.Helper()
	if _, err := os.Stat(filepath.Join(f.defsRepo, ".git")); err != nil {
		gittest.Run(f.t, f.defsRepo, "init", "-q")
	}
	for name, content := range files {
		p := filepath.Join(f.defsRepo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	gittest.Run(f.t, f.defsRepo, "add", "-A")
	gittest.Run(f.t, f.defsRepo, "commit", "-q", "--allow-empty", "-m", "definitions")
	return gittest.Run(f.t, f.defsRepo, "rev-parse", "HEAD")
}

// serve starts a controller on a fresh loopback port and connects to it.
func (f *farm) serve() {
	f.t.Helper()
	c, err := controller.New(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := grpc.NewServer(append(controller.ServerOptions(), f.opts...)...)
	c.Register(srv)
	observability.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	go srv.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.t.Fatal(err)
	}
	f.ctl, f.srv, f.conn, f.builds = c, srv, conn, pb.NewBuildServiceClient(conn)
}

// stopController stops the controller the way a crash would as far as its
// clients can tell: every connection drops at once.
func (f *farm) stopController() {
	f.ctl.Stop() // first: the workers' streams it sees end are not lost workers
	f.conn.Close()
	f.srv.Stop()
	f.ctl.Close()
}

// restartController replaces the controller with a new process-like
// instance on the same state file.
func (f *farm) restartController() {
	f.t.Helper()
	f.stopController()
	f.serve()
}

func (f *farm) start(morph string, opts ...func(*pb.StartBuild)) *buildWatch {
	f.t.Helper()
	req := &pb.StartBuild{RepoUrl: f.defsRepo, Commit: f.commit, MorphologyPath: morph}
	for _, o := range opts {
		o(req)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f.t.Cleanup(cancel)
	stream, err := f.builds.Build(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := stream.Send(&pb.BuildRequest{Request: &pb.BuildRequest_Start{Start: req}}); err != nil {
		f.t.Fatal(err)
	}
	return &buildWatch{t: f.t, stream: stream, recv: func() (*pb.BuildEvent, error) {
		resp, err := stream.Recv()
		return resp.GetEvent(), err
	}, cancel: cancel}
}

// buildWatch follows one Build stream.
type buildWatch struct {
	t      testing.TB
	stream pb.BuildService_BuildClient // nil when attached
	recv   func() (*pb.BuildEvent, error)
	cancel context.CancelFunc
	events []*pb.BuildEvent
}

// attach follows a build from its first event, as initiator attach does.
func (f *farm) attach(id string) *buildWatch {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f.t.Cleanup(cancel)
	stream, err := f.builds.Attach(ctx, &pb.AttachRequest{BuildId: id})
	if err != nil {
		f.t.Fatal(err)
	}
	return &buildWatch{t: f.t, recv: func() (*pb.BuildEvent, error) {
		resp, err := stream.Recv()
		return resp.GetEvent(), err
	}, cancel: cancel}
}

// wait reads events until the build ends and returns them all.
func (b *buildWatch) wait() []*pb.BuildEvent {
	b.t.Helper()
	for {
		ev, err := b.recv()
		if err != nil {
			b.t.Fatalf("build stream ended without a final event: %v (events so far: %v)", err, describe(b.events))
		}
		b.events = append(b.events, ev)
		switch ev.Event.(type) {
		case *pb.BuildEvent_BuildFinished, *pb.BuildEvent_BuildFailed, *pb.BuildEvent_BuildCancelled:
			return b.events
		}
	}
}

// next reads one event.
func (b *buildWatch) next() *pb.BuildEvent {
	b.t.Helper()
	ev, err := b.recv()
	if err != nil {
		b.t.Fatalf("build stream: %v", err)
	}
	b.events = append(b.events, ev)
	return ev
}

func describe(events []*pb.BuildEvent) string {
	var parts []string
	for _, e := range events {
		parts = append(parts, eventName(e))
	}
	return strings.Join(parts, " ")
}

func eventName(e *pb.BuildEvent) string {
	switch x := e.Event.(type) {
	case *pb.BuildEvent_Accepted:
		return "accepted"
	case *pb.BuildEvent_GraphResolved:
		return fmt.Sprintf("resolved(%d/%d)", x.GraphResolved.UnbuiltSteps, x.GraphResolved.TotalSteps)
	case *pb.BuildEvent_StepStarted:
		return "started:" + x.StepStarted.Step.StepName
	case *pb.BuildEvent_StepOutput:
		return "output:" + x.StepOutput.StepName
	case *pb.BuildEvent_StepFinished:
		return "finished:" + x.StepFinished.Step.StepName
	case *pb.BuildEvent_StepFailed:
		return "failed:" + x.StepFailed.Step.StepName
	case *pb.BuildEvent_BuildFinished:
		return "BUILD-FINISHED"
	case *pb.BuildEvent_BuildFailed:
		return "BUILD-FAILED(" + x.BuildFailed.Reason + ")"
	case *pb.BuildEvent_BuildCancelled:
		return "BUILD-CANCELLED"
	}
	return "?"
}

// testWorker speaks the real Work protocol. Its "build" stores a small
// artifact and a manifest in the real cache, unless told to fail a step.
type testWorker struct {
	t      testing.TB
	name   string
	cache  *artifactcache.Client
	stream pb.WorkerService_WorkClient
	cancel context.CancelFunc

	mu      sync.Mutex
	started []string          // step names, in the order jobs arrived
	fail    map[string]string // step name -> reason for a build failure
	hold    map[string]bool   // steps to keep running until released
	held    map[string]*pb.Job
	status  map[string]*pb.JobStatus
	// cancelled is set when the controller cancels a job this worker holds.
	cancelled bool
	// toldToDrain is set when the controller asks the worker to drain.
	toldToDrain bool
	// noop, when set, makes every job succeed at once with a manifest
	// naming this blob, without uploads or output: a no-op step.
	noop *pb.Digest
	// jobs holds the last job received for each step.
	jobs map[string]*pb.Job
	// took, when set for a step, is the run time its manifest reports.
	took map[string]time.Duration
	// lie makes the worker report steps done without storing anything.
	lie bool
	// checkInputs makes the worker look up the manifest of every artifact
	// a job stages first, and report those the cache lacks, as a real
	// worker's staging does.
	checkInputs bool
	// claimMissing makes the worker's first attempt at each named step
	// report every input it stages missing, whatever the cache holds.
	claimMissing map[string]bool
	// checkResult, when set, is what the worker reports for a check job
	// (Job.check), which it then does not build.
	checkResult func(j *pb.Job) *pb.CheckResult
	// profiles, by step name, are reported with the jobs' outcomes.
	profiles map[string]*pb.StepProfile
	// conn, when set, is the connection the worker dials the controller on
	// (e.g. one carrying its token).
	conn *grpc.ClientConn
	// ended receives the status its stream ended with.
	ended chan error
	// arrived and reported time each job's arrival and done report.
	arrived  map[string]time.Time
	reported map[string]time.Time
	sendMu   sync.Mutex
}

func (f *farm) worker(name string, slots int) *testWorker {
	f.t.Helper()
	return f.register(&pb.WorkerRegistration{Name: name, Slots: int32(slots), Arch: "x86_64"})
}

// noopWorker connects a worker whose every job succeeds at once with a
// manifest naming blob.
func (f *farm) noopWorker(name string, slots int, blob *pb.Digest) *testWorker {
	f.t.Helper()
	return f.register(&pb.WorkerRegistration{Name: name, Slots: int32(slots), Arch: "x86_64"}, func(w *testWorker) { w.noop = blob })
}

// tagged connects a worker with tags.
func (f *farm) tagged(name string, tags map[string]string) *testWorker {
	f.t.Helper()
	return f.register(&pb.WorkerRegistration{Name: name, Slots: 4, Arch: "x86_64", Tags: tags})
}

// register connects a test worker; options adjust it before it serves.
func (f *farm) register(reg *pb.WorkerRegistration, options ...func(*testWorker)) *testWorker {
	f.t.Helper()
	name := reg.Name
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	w := &testWorker{t: f.t, name: name, cache: f.cache, cancel: cancel, conn: f.conn, ended: make(chan error, 1),
		fail: map[string]string{}, hold: map[string]bool{}, held: map[string]*pb.Job{}, status: map[string]*pb.JobStatus{},
		arrived: map[string]time.Time{}, reported: map[string]time.Time{}, jobs: map[string]*pb.Job{}, took: map[string]time.Duration{}}
	for _, o := range options {
		o(w)
	}
	stream, err := pb.NewWorkerServiceClient(w.conn).Work(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	w.stream = stream
	w.send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: reg}})
	go w.serve()
	return w
}

func (w *testWorker) send(m *pb.WorkRequest) {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	_ = w.stream.Send(m)
}

func (w *testWorker) serve() {
	for {
		resp, err := w.stream.Recv()
		if err != nil {
			w.ended <- err
			return
		}
		if len(resp.AcknowledgedJobIds) > 0 {
			w.mu.Lock()
			for _, id := range resp.AcknowledgedJobIds {
				delete(w.status, id)
			}
			w.mu.Unlock()
		}
		if resp.Drain {
			w.mu.Lock()
			w.toldToDrain = true
			w.mu.Unlock()
		}
		if len(resp.CancelJobIds) > 0 {
			w.mu.Lock()
			for _, id := range resp.CancelJobIds {
				if _, ok := w.status[id]; ok {
					w.cancelled = true
				}
			}
			w.mu.Unlock()
		}
		for _, j := range resp.Start {
			w.mu.Lock()
			w.arrived[j.Name] = time.Now()
			w.jobs[j.Name] = j
			w.started = append(w.started, j.Name)
			hold := w.hold[j.Name]
			if hold {
				w.held[j.Name] = j
				w.status[j.JobId] = &pb.JobStatus{JobId: j.JobId, CacheKey: j.CacheKey, Phase: pb.JobPhase_JOB_PHASE_RUNNING}
			}
			w.mu.Unlock()
			if !hold {
				go w.build(j)
			}
		}
	}
}

// failed reports a cache error, unless the test is already shutting the
// cache connection down under a job still in flight, or the cache refused
// the result of an attempt the controller had abandoned (its worker was
// lost and a later attempt's result is stored): the cache's job.
func (w *testWorker) failed(what string, err error) {
	abandoned := status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), "was abandoned")
	if status.Code(err) != codes.Canceled && !abandoned {
		w.t.Errorf("%s: %v", what, err)
	}
}

// build pretends to build: output, an artifact, a log and a manifest.
func (w *testWorker) build(j *pb.Job) {
	ctx := context.Background()
	if w.noop != nil {
		m := &pb.Manifest{CacheKey: j.CacheKey, StepName: j.Name, Kind: j.Kind, Worker: w.name, Files: []*pb.ManifestFile{
			{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: w.noop}}, Grant: j.Grant}
		if err := w.cache.PutManifest(ctx, m); err != nil {
			w.failed("storing a manifest", err)
			return
		}
		w.mu.Lock()
		w.status[j.JobId] = &pb.JobStatus{JobId: j.JobId, Phase: pb.JobPhase_JOB_PHASE_DONE, Manifest: m}
		w.reported[j.Name] = time.Now()
		w.mu.Unlock()
		w.report()
		return
	}
	if j.Check != nil && w.checkResult != nil {
		w.mu.Lock()
		w.status[j.JobId] = &pb.JobStatus{JobId: j.JobId, Phase: pb.JobPhase_JOB_PHASE_DONE, Check: w.checkResult(j)}
		w.mu.Unlock()
		w.report()
		return
	}
	if missing := w.missingInputs(j); len(missing) > 0 {
		w.mu.Lock()
		w.status[j.JobId] = &pb.JobStatus{JobId: j.JobId, CacheKey: j.CacheKey, Phase: pb.JobPhase_JOB_PHASE_FAILED, Failure: &pb.JobFailure{
			Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: "inputs missing from the cache", MissingCacheKeys: missing}}
		w.mu.Unlock()
		w.report()
		return
	}
	w.send(&pb.WorkRequest{Message: &pb.WorkRequest_Output{Output: &pb.JobOutput{JobId: j.JobId, Stream: pb.OutputStream_OUTPUT_STREAM_STDOUT, Data: []byte("building " + j.Name + "\n")}}})
	logD, err := w.cache.UploadBytes(ctx, []byte("log of "+j.Name))
	if err != nil {
		w.failed("uploading a log", err)
		return
	}
	w.mu.Lock()
	reason, fail := w.fail[j.Name]
	w.mu.Unlock()
	st := &pb.JobStatus{JobId: j.JobId, CacheKey: j.CacheKey, Profile: w.profiles[j.Name]}
	if fail {
		st.Phase = pb.JobPhase_JOB_PHASE_FAILED
		st.Failure = &pb.JobFailure{Kind: pb.FailureKind_FAILURE_KIND_BUILD, Reason: reason, ExitCode: 2, Log: logD.Proto()}
	} else {
		artD, err := w.cache.UploadBytes(ctx, []byte("artifact of "+j.Name+" "+j.CacheKey))
		if err != nil {
			w.failed("uploading an artifact", err)
			return
		}
		m := &pb.Manifest{CacheKey: j.CacheKey, StepName: j.Name, Kind: j.Kind, Worker: w.name, Files: []*pb.ManifestFile{
			{Name: j.Name + "-misc", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: artD.Proto()},
			{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: logD.Proto()},
		}}
		w.mu.Lock()
		if d, ok := w.took[j.Name]; ok {
			now := time.Now()
			m.Started, m.Finished = timestamppb.New(now.Add(-d)), timestamppb.New(now)
		}
		m.Grant = j.Grant
		lie := w.lie
		w.mu.Unlock()
		if lie {
			// Claims success without storing the manifest.
		} else if err := w.cache.PutManifest(ctx, m); err != nil {
			w.failed("storing a manifest", err)
			return
		}
		st.Phase, st.Manifest = pb.JobPhase_JOB_PHASE_DONE, m
	}
	w.mu.Lock()
	w.status[j.JobId] = st
	w.mu.Unlock()
	w.report()
}

// job returns the last job the worker received for a step.
func (w *testWorker) job(step string) *pb.Job {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.jobs[step]
}

// missingInputs lists the staged artifacts the cache has no manifest for,
// when the worker checks its inputs.
func (w *testWorker) missingInputs(j *pb.Job) []string {
	w.mu.Lock()
	check := w.checkInputs
	lie := w.claimMissing[j.Name]
	delete(w.claimMissing, j.Name)
	w.mu.Unlock()
	if lie {
		return j.Staging
	}
	var missing []string
	for _, k := range j.Staging {
		if !check {
			break
		}
		key, err := digest.ParseCacheKey(k)
		if err != nil {
			w.t.Errorf("job %s stages a bad key %q", j.Name, k)
			continue
		}
		if _, err := w.cache.GetManifest(context.Background(), key); status.Code(err) == codes.NotFound {
			missing = append(missing, k)
		}
	}
	return missing
}

// report sends the full snapshot of the worker's jobs.
func (w *testWorker) report() {
	w.mu.Lock()
	state := &pb.WorkerState{}
	for _, s := range w.status {
		state.Jobs = append(state.Jobs, s)
	}
	w.mu.Unlock()
	w.send(&pb.WorkRequest{Message: &pb.WorkRequest_State{State: state}})
}

// release finishes a held step.
func (w *testWorker) release(step string) {
	w.mu.Lock()
	j := w.held[step]
	delete(w.hold, step)
	w.mu.Unlock()
	if j == nil {
		w.t.Fatalf("%s never reached worker %s", step, w.name)
	}
	w.build(j)
}

// reconnect is the worker coming back on a new stream (after a controller
// restart), still holding its jobs: it registers under the same name and
// reports them.
func (f *farm) reconnect(old *testWorker) *testWorker {
	f.t.Helper()
	old.mu.Lock()
	status, held, hold := old.status, old.held, old.hold
	old.mu.Unlock()
	w := f.register(&pb.WorkerRegistration{Name: old.name, Slots: 4, Arch: "x86_64"}, func(w *testWorker) {
		w.status, w.held, w.hold = status, held, hold
	})
	w.report()
	return w
}

func (w *testWorker) startedSteps() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.started...)
}

// waitHeld waits until a held step has arrived.
func (w *testWorker) waitHeld(step string) *pb.Job {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		j := w.held[step]
		w.mu.Unlock()
		if j != nil {
			return j
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.t.Fatalf("%s never reached worker %s", step, w.name)
	return nil
}

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}
