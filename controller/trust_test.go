package controller_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"distbuild/auth"
	"distbuild/controller"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

func TestADoneReportTheCacheDoesNotConfirmFailsTheAttemptAndTheWorkerNeverGetsTheStepAgain(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	liar := f.register(&pb.WorkerRegistration{Name: "liar", Slots: 4, Arch: "x86_64"}, func(w *testWorker) { w.lie = true })
	b := f.start("systems/test.morph")
	var events []*pb.BuildEvent
	for {
		ev := b.next()
		events = append(events, ev)
		if ev.GetStepFailed() != nil {
			break
		}
	}
	sf := events[len(events)-1].GetStepFailed()
	if sf.Step.StepName != "compiler" || sf.Kind != pb.FailureKind_FAILURE_KIND_SETUP || !sf.WillRetry ||
		!strings.Contains(sf.Reason, "reported success, but the cache holds no manifest") {
		t.Fatalf("false success reported as %v; want compiler's attempt failed for the farm's reason, naming the missing manifest", sf)
	}
	// The liar is the only worker, and free, but never gets compiler
	// again: an honest worker must come.
	honest := f.worker("honest", 4)
	events = append(events, b.wait()...)
	if story := describe(events); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("build: %s", story)
	}
	for _, e := range events {
		if sf := e.GetStepFinished(); sf != nil && sf.Worker != "honest" {
			t.Errorf("%s credited to %s on its word alone", sf.Step.StepName, sf.Worker)
		}
	}
	seen := map[string]bool{}
	for _, step := range liar.startedSteps() {
		if seen[step] {
			t.Errorf("the liar was given %s again after claiming it falsely", step)
		}
		seen[step] = true
	}
	if !slices.Contains(honest.startedSteps(), "compiler") {
		t.Errorf("honest built %v, want compiler among them", honest.startedSteps())
	}
}

func TestAFalseDoneIsRetriedOnAnHonestWorker(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.register(&pb.WorkerRegistration{Name: "liar", Slots: 1, Arch: "x86_64"}, func(w *testWorker) { w.lie = true })
	honest := f.worker("honest", 1)
	events := f.start("systems/test.morph").wait()
	if story := describe(events); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("with one honest worker the build should still succeed: %s", story)
	}
	for _, e := range events {
		if sf := e.GetStepFinished(); sf != nil && sf.Worker != "honest" {
			t.Errorf("%s credited to %s", sf.Step.StepName, sf.Worker)
		}
	}
	if len(honest.startedSteps()) != 7 {
		t.Errorf("honest built %v, want all 7 steps", honest.startedSteps())
	}
}

func TestJobsRunningAcrossARestartAreAdoptedNotRunAgain(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.cfg.ResumeGrace = time.Minute // long: nothing may wait for it to pass
	w1 := f.worker("w1", 4)
	w1.hold["hello"], w1.hold["goodbye"] = true, true
	b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.Detach = true })
	id := b.next().GetAccepted().GetBuildId()
	w1.waitHeld("hello")
	w1.waitHeld("goodbye")

	f.restartController()
	// goodbye finishes while the controller is down, after it has been
	// restarted but before its worker is back: its manifest is in the
	// cache, and the worker reports it done.
	w1.release("goodbye")
	w2 := f.worker("w2", 4)
	w1 = f.reconnect(w1)
	attach := f.attach(id)
	// hello is still running on w1: it is adopted, and nothing else may
	// start it.
	for {
		ss := attach.next().GetStepStarted()
		if ss != nil && ss.Step.StepName == "hello" && strings.Count(describe(attach.events), "started:hello") == 2 {
			if ss.Worker != "w1" {
				t.Fatalf("after the restart hello started on %s: %s", ss.Worker, describe(attach.events))
			}
			break // adopted
		}
	}
	w1.release("hello")
	if story := describe(attach.wait()); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("after adoption: %s", story)
	}
	if got := w2.startedSteps(); slices.Contains(got, "hello") || slices.Contains(got, "goodbye") {
		t.Errorf("w2 ran %v: a step running or finished across the restart ran again", got)
	}
	st, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Steps {
		if (s.Step.StepName == "hello" || s.Step.StepName == "goodbye") && (s.State != pb.StepState_STEP_STATE_FINISHED || s.Worker != "w1") {
			t.Errorf("%s: %v on %q, want finished on w1", s.Step.StepName, s.State, s.Worker)
		}
	}
}

func TestAStepHeldForAWorkerThatNeverReturnsRunsAfterTheGrace(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.cfg.ResumeGrace = 300 * time.Millisecond
	w1 := f.worker("w1", 4)
	w1.hold["hello"] = true
	b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.Detach = true })
	id := b.next().GetAccepted().GetBuildId()
	w1.waitHeld("hello")
	f.restartController()
	w2 := f.worker("w2", 4)
	f.clock.Advance(f.cfg.ResumeGrace)
	if story := describe(f.attach(id).wait()); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("build: %s", story)
	}
	if !slices.Contains(w2.startedSteps(), "hello") {
		t.Errorf("w2 ran %v; hello should have run there once w1 stayed away", w2.startedSteps())
	}
}

func TestCancelledStepsEndCancelledWithTheirLog(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.hold["compiler"] = true
	b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.Detach = true })
	id := b.next().GetAccepted().GetBuildId()
	job := w.waitHeld("compiler")
	if _, err := f.builds.Cancel(context.Background(), &pb.CancelRequest{BuildId: id}); err != nil {
		t.Fatal(err)
	}
	state := func() *pb.StepStatus {
		st, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: id})
		if err != nil {
			t.Fatal(err)
		}
		return st.Steps[0]
	}
	if s := state(); s.Step.StepName != "compiler" || s.State != pb.StepState_STEP_STATE_CANCELLED {
		t.Fatalf("after cancelling: %s is %v, want cancelled", s.Step.StepName, s.State)
	}
	// The worker stops the job and stores what it printed.
	logD, err := f.cache.UploadBytes(context.Background(), []byte("half a compiler"))
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.status[job.JobId] = &pb.JobStatus{JobId: job.JobId, CacheKey: job.CacheKey, Phase: pb.JobPhase_JOB_PHASE_FAILED,
		Failure: &pb.JobFailure{Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: "cancelled", Log: logD.Proto()}}
	w.mu.Unlock()
	w.report()
	deadline := time.Now().Add(5 * time.Second)
	for state().Log.GetHash() != logD.Proto().Hash {
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled step's log never reached its status: %v", state())
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.restartController()
	if s := state(); s.State != pb.StepState_STEP_STATE_CANCELLED {
		t.Errorf("after a restart the cancelled step is %v", s.State)
	}
}

func TestRevokingAWorkerEndsItsStreamAndRequeuesItsJobs(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	tokens, r, path := f.requireAuth(map[string]auth.Kind{"alice": auth.KindUser, "w1": auth.KindWorker, "w2": auth.KindWorker})
	userToken, w1Token, w2Token := tokens["alice"], tokens["w1"], tokens["w2"]
	dial := func(token string) *grpc.ClientConn {
		conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(auth.Token(token)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	f.conn.Close()
	f.conn = dial(userToken)
	f.builds = pb.NewBuildServiceClient(f.conn)
	w1 := f.register(&pb.WorkerRegistration{Name: "w1", Slots: 4, Arch: "x86_64"}, func(w *testWorker) { w.conn = dial(w1Token) })
	w1.hold["compiler"] = true
	b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.Detach = true })
	id := b.next().GetAccepted().GetBuildId()
	w1.waitHeld("compiler")
	follower, err := f.builds.Attach(context.Background(), &pb.AttachRequest{BuildId: id})
	if err != nil {
		t.Fatal(err)
	}

	if err := r.Remove(auth.KindWorker, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-w1.ended:
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("the revoked worker's stream ended with %v, want Unauthenticated saying it was revoked", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked worker's stream stayed open")
	}
	w2 := f.register(&pb.WorkerRegistration{Name: "w2", Slots: 4, Arch: "x86_64"}, func(w *testWorker) { w.conn = dial(w2Token) })
	w2.hold["compiler"] = true
	w2.waitHeld("compiler") // requeued at once, not after the 10s lease

	// Revoking the user ends their open Build and Attach streams too.
	r.Remove(auth.KindUser, "alice")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	for name, recv := range map[string]func() error{
		"Attach": func() error { _, err := follower.Recv(); return err },
		"Build":  func() error { _, err := b.stream.Recv(); return err },
	} {
		for {
			if err := recv(); err != nil {
				if status.Code(err) != codes.Unauthenticated {
					t.Errorf("the revoked user's %s stream ended with %v, want Unauthenticated", name, err)
				}
				break
			}
		}
	}
}

func mustCacheKey(t *testing.T, s string) digest.CacheKey {
	t.Helper()
	k, err := digest.ParseCacheKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lateManifest is what a stalled worker stores when it wakes up: its
// attempt's manifest, under the grant of the job it was given.
func lateManifest(t *testing.T, f *farm, job *pb.Job, worker string) *pb.Manifest {
	t.Helper()
	d, err := f.cache.UploadBytes(context.Background(), []byte("late artifact of "+job.Name))
	if err != nil {
		t.Fatal(err)
	}
	return &pb.Manifest{CacheKey: job.CacheKey, StepName: job.Name, Kind: job.Kind, Worker: worker, Grant: job.Grant,
		Files: []*pb.ManifestFile{{Name: job.Name + "-misc", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}}}
}

func TestAStalledWorkersLateResultNeverWins(t *testing.T) {
	for _, order := range []string{"late result after the retry's", "late result before the retry's"} {
		t.Run(order, func(t *testing.T) {
			f := startFarm(t, 300*time.Millisecond)
			stalled := f.worker("w1", 4)
			stalled.hold["compiler"] = true
			b := f.start("systems/test.morph")
			abandoned := stalled.waitHeld("compiler")
			// w1 goes silent past its lease: compiler moves to w2, whose
			// lease runs on.
			f.clock.Advance(200 * time.Millisecond)
			retry := f.worker("w2", 4)
			f.clock.Advance(150 * time.Millisecond)
			retry.hold["compiler"] = true
			current := retry.waitHeld("compiler")
			if current.Grant.GetSequence() <= abandoned.Grant.GetSequence() {
				t.Fatalf("the retry's grant %d does not outrank the abandoned attempt's %d", current.Grant.GetSequence(), abandoned.Grant.GetSequence())
			}
			late := lateManifest(t, f, abandoned, "w1")
			if order == "late result before the retry's" {
				if err := f.cache.PutManifest(context.Background(), late); err != nil {
					t.Fatalf("the late result, first under its key: %v", err)
				}
				retry.release("compiler")
			} else {
				retry.release("compiler")
				waitForManifest(t, f, current.CacheKey, "w2")
				if err := f.cache.PutManifest(context.Background(), late); status.Code(err) != codes.FailedPrecondition {
					t.Fatalf("the abandoned attempt's late manifest: %v, want FailedPrecondition", err)
				}
			}
			events := b.wait()
			if !strings.HasSuffix(describe(events), "BUILD-FINISHED") {
				t.Fatalf("build: %s", describe(events))
			}
			m, err := f.cache.GetManifest(context.Background(), mustCacheKey(t, current.CacheKey))
			if err != nil || m.Worker != "w2" || m.Grant.GetJobId() != current.JobId {
				t.Fatalf("the cache holds %v (%v); want the retry's manifest from w2", m, err)
			}
			for _, e := range events {
				if sf := e.GetStepFinished(); sf != nil && sf.Step.StepName == "compiler" && sf.Worker != "w2" {
					t.Errorf("compiler credited to %s", sf.Worker)
				}
			}
		})
	}
}

func waitForManifest(t *testing.T, f *farm, key, worker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m, err := f.cache.GetManifest(context.Background(), mustCacheKey(t, key)); err == nil && m.Worker == worker {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no manifest from %s for %s", worker, key)
}

// failingCache answers GetManifest with the cache's own error a few
// times: a trove with a failing index, not a lying worker.
type failingCache struct {
	controller.ArtifactCache
	failures atomic.Int32
}

func (c *failingCache) GetManifest(ctx context.Context, k digest.CacheKey) (*pb.Manifest, error) {
	if c.failures.Add(-1) >= 0 {
		return nil, status.Error(codes.Internal, "reading the index: input/output error")
	}
	return c.ArtifactCache.GetManifest(ctx, k)
}

func TestACacheThatCannotConfirmASuccessBlamesNoWorker(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	cache := &failingCache{ArtifactCache: f.cfg.Cache}
	cache.failures.Store(3)
	f.cfg.Cache = cache
	f.restartController()
	w := f.worker("w1", 4)
	b := f.start("systems/test.morph")
	// The worker reports again, as real workers do every few seconds,
	// until the cache answers.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				w.report()
			}
		}
	}()
	events := b.wait()
	if story := describe(events); !strings.HasSuffix(story, "BUILD-FINISHED") || strings.Contains(story, "failed:") {
		t.Fatalf("build: %s; want it finished with no failed attempt: the cache's errors are not the worker's", story)
	}
	if cache.failures.Load() >= 0 {
		t.Fatal("the cache never failed: the test shows nothing")
	}
}

// TestACheckResultAboutAnotherStepIsRefusedAndTheCheckRunsElsewhere has a
// worker answer a check with a result for another cache key: the claim is
// a farm failure of that worker, which never gets the check again, and the
// check is recorded only as the honest worker found it.
func TestACheckResultAboutAnotherStepIsRefusedAndTheCheckRunsElsewhere(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	builder := f.worker("builder", 4)
	if story := describe(f.start("systems/test.morph").wait()); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("first build: %s", story)
	}
	builder.cancel()
	reproducible := func(j *pb.Job) *pb.CheckResult {
		return &pb.CheckResult{CacheKey: j.CacheKey, Outcome: pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE, CheckedBy: "someone else", BuiltBy: "nobody"}
	}
	// "a-liar" sorts first, so it is given the check first.
	f.register(&pb.WorkerRegistration{Name: "a-liar", Slots: 1, Arch: "x86_64"}, func(w *testWorker) {
		w.checkResult = func(j *pb.Job) *pb.CheckResult {
			r := reproducible(j)
			r.CacheKey = strings.Repeat("0", 64)
			return r
		}
	})
	honest := f.register(&pb.WorkerRegistration{Name: "honest", Slots: 1, Arch: "x86_64"}, func(w *testWorker) { w.checkResult = reproducible })
	b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.Check, r.CheckSteps, r.KeepGoing = true, []string{"hello"}, true })
	events := b.wait()
	var refused bool
	var checked []*pb.CheckResult
	for _, e := range events {
		if sf := e.GetStepFailed(); sf != nil && sf.Step.StepName == "hello.check" && sf.Worker == "a-liar" && sf.WillRetry &&
			strings.Contains(sf.Reason, "without the check's result") {
			refused = true
		}
		if sc := e.GetStepChecked(); sc != nil {
			checked = append(checked, sc.Result)
		}
	}
	if !refused || !strings.HasSuffix(describe(events), "BUILD-FINISHED") {
		t.Fatalf("a check result about another key was not refused as a farm failure of its worker: %s", describe(events))
	}
	if len(checked) != 1 || checked[0].CheckedBy != "honest" || checked[0].BuiltBy != "builder" || checked[0].StepName != "hello" {
		t.Fatalf("checks recorded %v; want one, by honest, of builder's hello (names as the controller knows them, not as the worker said)", checked)
	}
	if !slices.Contains(honest.startedSteps(), "hello") {
		t.Errorf("honest ran %v; want the check of hello", honest.startedSteps())
	}
}
