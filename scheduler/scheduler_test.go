package scheduler_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"distbuild/scheduler"
)

// spec makes a task spec whose key is its name.
func spec(name string, deps ...string) scheduler.TaskSpec {
	return scheduler.TaskSpec{Key: name, Name: name, Deps: deps, Platform: scheduler.Platform{Arch: "x86_64"}, Duration: time.Second}
}

func cached(s scheduler.TaskSpec) scheduler.TaskSpec { s.Cached = true; return s }

func addBuild(t *testing.T, s *scheduler.Scheduler, id string, keepGoing bool, specs ...scheduler.TaskSpec) []scheduler.Event {
	t.Helper()
	ev, err := s.AddBuild(id, specs, keepGoing)
	if err != nil {
		t.Fatalf("AddBuild(%s): %v", id, err)
	}
	return ev
}

func dispatch(s *scheduler.Scheduler) map[string]scheduler.Assignment {
	as, _ := s.Dispatch()
	out := map[string]scheduler.Assignment{}
	for _, a := range as {
		out[a.Task.Name] = a
	}
	return out
}

func started(as map[string]scheduler.Assignment) []string {
	var names []string
	for n := range as {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func kinds(events []scheduler.Event) map[string][]scheduler.EventKind {
	out := map[string][]scheduler.EventKind{}
	for _, e := range events {
		out[e.Build.ID] = append(out[e.Build.ID], e.Kind)
	}
	return out
}

func newScheduler(workers int, slots int) *scheduler.Scheduler {
	s := scheduler.New(scheduler.FIFO{}, scheduler.Options{MaxAttempts: 3})
	for i := range workers {
		s.AddWorker(string(rune('a'+i)), slots, "x86_64", nil)
	}
	return s
}

func TestStepsStartOnlyWhenTheirDependenciesAreDone(t *testing.T) {
	s := newScheduler(2, 2)
	addBuild(t, s, "b1", false, spec("lib"), spec("app", "lib"), spec("tool"), spec("system", "app", "tool"))
	as := dispatch(s)
	if got := started(as); !slices.Equal(got, []string{"lib", "tool"}) {
		t.Fatalf("started %v, want lib and tool", got)
	}
	if as["lib"].Worker == as["tool"].Worker {
		t.Errorf("lib and tool both went to %s; ready work should spread over idle workers", as["lib"].Worker)
	}
	if got := dispatch(s); len(got) != 0 {
		t.Fatalf("started %v before any dependency finished", started(got))
	}
	s.Finished(as["lib"].JobID)
	as2 := dispatch(s)
	if got := started(as2); !slices.Equal(got, []string{"app"}) {
		t.Fatalf("after lib: started %v, want app", got)
	}
	s.Finished(as["tool"].JobID)
	s.Finished(as2["app"].JobID)
	as3 := dispatch(s)
	ev := s.Finished(as3["system"].JobID)
	if k := kinds(ev)["b1"]; !slices.Equal(k, []scheduler.EventKind{scheduler.StepFinished, scheduler.BuildSucceeded}) {
		t.Errorf("events after the last step = %v, want StepFinished then BuildSucceeded", k)
	}
	if s.Build("b1") != nil {
		t.Error("ended build is still live")
	}
}

func TestCachedStepsDoNotRun(t *testing.T) {
	s := newScheduler(1, 4)
	ev := addBuild(t, s, "all-cached", false, cached(spec("a")), cached(spec("b", "a")))
	if k := kinds(ev)["all-cached"]; !slices.Equal(k, []scheduler.EventKind{scheduler.BuildSucceeded}) {
		t.Errorf("a fully cached build gave %v, want immediate success", k)
	}
	addBuild(t, s, "partial", false, cached(spec("a")), spec("b", "a"), spec("c", "b"))
	if got := started(dispatch(s)); !slices.Equal(got, []string{"b"}) {
		t.Errorf("started %v, want only the unbuilt step whose dependency is cached", got)
	}
}

func TestConcurrentBuildsShareAStepAndBothGetItsResult(t *testing.T) {
	s := newScheduler(2, 4)
	addBuild(t, s, "b1", false, spec("zlib"), spec("png", "zlib"))
	addBuild(t, s, "b2", false, spec("zlib"), spec("jpeg", "zlib"))
	as := dispatch(s)
	if got := started(as); !slices.Equal(got, []string{"zlib"}) {
		t.Fatalf("started %v, want zlib once", got)
	}
	ev := s.Finished(as["zlib"].JobID)
	k := kinds(ev)
	if len(k["b1"]) != 1 || len(k["b2"]) != 1 {
		t.Fatalf("zlib finishing told %v, want both builds", k)
	}
	if got := started(dispatch(s)); !slices.Equal(got, []string{"jpeg", "png"}) {
		t.Errorf("started %v, want both builds' next steps", got)
	}
}

func TestCancellingOneBuildKeepsStepsAnotherBuildWants(t *testing.T) {
	s := newScheduler(1, 4)
	addBuild(t, s, "b1", false, spec("shared"), spec("only1"))
	addBuild(t, s, "b2", false, spec("shared"))
	as := dispatch(s)
	ev := s.CancelBuild("b1", "user pressed Ctrl-C")
	if len(ev) != 1 || ev[0].Kind != scheduler.BuildCancelled {
		t.Fatalf("cancel gave %v", ev)
	}
	if got := ev[0].Cancel; len(got) != 1 || got[0].JobID != as["only1"].JobID {
		t.Errorf("cancel stops %v, want only only1's job %s", got, as["only1"].JobID)
	}
	if s.Job(as["shared"].JobID) == nil {
		t.Error("the shared step's job was dropped though b2 still wants it")
	}
	if s.Job(as["only1"].JobID) != nil || s.Finished(as["only1"].JobID) != nil {
		t.Error("a late result for the cancelled job was not ignored")
	}
	if k := kinds(s.Finished(as["shared"].JobID)); len(k["b1"]) != 0 || len(k["b2"]) != 2 {
		t.Errorf("shared finishing told %v, want only b2 (step and build)", k)
	}
	if got := s.CancelBuild("b2", "again"); got != nil {
		t.Errorf("cancelling an ended build gave %v", got)
	}
}

func TestSetupFailuresRetryElsewhereThenFailWithEveryReason(t *testing.T) {
	s := newScheduler(2, 1)
	addBuild(t, s, "b", false, spec("flaky"))
	first := dispatch(s)["flaky"]
	ev := s.Failed(first.JobID, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: first.Worker, Reason: "fetch timed out"})
	if len(ev) != 1 || !ev[0].WillRetry {
		t.Fatalf("first setup failure gave %+v, want a StepFailed that will retry", ev)
	}
	second := dispatch(s)["flaky"]
	if second.Worker == first.Worker || second.Attempt != 2 {
		t.Errorf("retry went to %s (attempt %d), want the other worker, attempt 2", second.Worker, second.Attempt)
	}
	s.Failed(second.JobID, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: second.Worker, Reason: "disk full"})
	third := dispatch(s)["flaky"]
	if third.Attempt != 3 {
		t.Fatalf("third attempt = %+v", third)
	}
	ev = s.Failed(third.JobID, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: third.Worker, Reason: "upload refused"})
	k := kinds(ev)["b"]
	if !slices.Equal(k, []scheduler.EventKind{scheduler.StepFailed, scheduler.BuildFailed}) {
		t.Fatalf("after MaxAttempts: %v, want StepFailed then BuildFailed", k)
	}
	reason := ev[1].Reason
	for _, want := range []string{"3 times", "fetch timed out", "disk full", "upload refused"} {
		if !strings.Contains(reason, want) {
			t.Errorf("build failure reason %q does not mention %q", reason, want)
		}
	}
	if got := dispatch(s); len(got) != 0 {
		t.Errorf("the step was requeued again: %v", started(got))
	}
}

func TestBuildFailuresAreNotRetriedAndStopTheRestOfTheBuild(t *testing.T) {
	s := newScheduler(1, 2)
	addBuild(t, s, "b", false, spec("broken"), spec("other"), spec("after", "broken"))
	as := dispatch(s)
	ev := s.Failed(as["broken"].JobID, scheduler.Failure{Kind: scheduler.BuildFailure, Worker: "a", Reason: "command exited 2", ExitCode: 2})
	if k := kinds(ev)["b"]; !slices.Equal(k, []scheduler.EventKind{scheduler.StepFailed, scheduler.BuildFailed}) {
		t.Fatalf("events %v, want StepFailed then BuildFailed", k)
	}
	if ev[0].WillRetry || !strings.Contains(ev[1].Reason, "step broken failed: command exited 2") {
		t.Errorf("failure events %+v", ev)
	}
	if c := ev[1].Cancel; len(c) != 1 || c[0].JobID != as["other"].JobID {
		t.Errorf("build failure cancels %v, want the still-running step other", c)
	}
}

func TestKeepGoingFinishesIndependentStepsAndSkipsDependents(t *testing.T) {
	s := newScheduler(1, 4)
	addBuild(t, s, "b", true, spec("broken"), spec("fine"), spec("needs-broken", "broken"), spec("needs-fine", "fine"), spec("top", "needs-broken", "needs-fine"))
	as := dispatch(s)
	ev := s.Failed(as["broken"].JobID, scheduler.Failure{Kind: scheduler.BuildFailure, Worker: "a", Reason: "exit 1"})
	if k := kinds(ev)["b"]; !slices.Equal(k, []scheduler.EventKind{scheduler.StepFailed}) {
		t.Fatalf("keep-going build ended early: %v", k)
	}
	b := s.Build("b")
	tasks := map[string]*scheduler.Task{}
	for _, tk := range b.Tasks() {
		tasks[tk.Name] = tk
	}
	if !b.Skipped(tasks["needs-broken"]) || !b.Skipped(tasks["top"]) || b.Skipped(tasks["needs-fine"]) {
		t.Errorf("skipped: needs-broken %v top %v needs-fine %v; want true true false",
			b.Skipped(tasks["needs-broken"]), b.Skipped(tasks["top"]), b.Skipped(tasks["needs-fine"]))
	}
	s.Finished(as["fine"].JobID)
	as2 := dispatch(s)
	if got := started(as2); !slices.Equal(got, []string{"needs-fine"}) {
		t.Fatalf("started %v, want the independent needs-fine", got)
	}
	ev = s.Finished(as2["needs-fine"].JobID)
	k := kinds(ev)["b"]
	if !slices.Equal(k, []scheduler.EventKind{scheduler.StepFinished, scheduler.BuildFailed}) || !strings.Contains(ev[1].Reason, "broken") {
		t.Errorf("end of keep-going build: %v %q, want StepFinished then BuildFailed naming broken", k, ev[len(ev)-1].Reason)
	}
}

func TestALostWorkersJobsAreRequeuedAndItsLateResultsIgnored(t *testing.T) {
	s := newScheduler(2, 1)
	addBuild(t, s, "b", false, spec("x"), spec("y"))
	as := dispatch(s)
	lost := as["x"]
	ev := s.RemoveWorker(lost.Worker, "missed its report deadline")
	if len(ev) != 1 || ev[0].Kind != scheduler.StepFailed || !ev[0].WillRetry || ev[0].Failure.Kind != scheduler.SetupFailure {
		t.Fatalf("removing the worker gave %+v, want a retried setup failure", ev)
	}
	if s.Finished(lost.JobID) != nil {
		t.Error("a late result from the lost worker was accepted")
	}
	s.Finished(as["y"].JobID)
	again := dispatch(s)["x"]
	if again.Worker == lost.Worker || again.Attempt != 2 {
		t.Errorf("x requeued as %+v, want the remaining worker, attempt 2", again)
	}
}

func TestStepsRunOnlyOnWorkersOfTheirArchAndTags(t *testing.T) {
	s := scheduler.New(scheduler.FIFO{}, scheduler.Options{})
	s.AddWorker("arm", 4, "armv8l64", nil)
	s.AddWorker("plain", 4, "x86_64", nil)
	s.AddWorker("gpu", 4, "x86_64", map[string]string{"gpu": "yes"})
	needsGPU := spec("render")
	needsGPU.Platform.Tags = map[string]string{"gpu": "yes"}
	addBuild(t, s, "b", false, needsGPU, spec("plain-a"), spec("plain-b"), spec("plain-c"))
	for name, a := range dispatch(s) {
		if a.Worker == "arm" {
			t.Errorf("%s went to the armv8l64 worker", name)
		}
		if name == "render" && a.Worker != "gpu" {
			t.Errorf("render went to %s, want the worker tagged gpu=yes", a.Worker)
		}
	}
	s2 := scheduler.New(scheduler.FIFO{}, scheduler.Options{})
	s2.AddWorker("arm", 4, "armv8l64", nil)
	addBuild(t, s2, "b", false, spec("x"))
	if got := dispatch(s2); len(got) != 0 {
		t.Errorf("x86_64 step started on an arm-only farm: %v", started(got))
	}
}

func TestCriticalPathStartsTheLongChainFirst(t *testing.T) {
	specs := []scheduler.TaskSpec{spec("short-1"), spec("short-2"), spec("short-3"), spec("chain-1")}
	for i := 2; i <= 5; i++ {
		specs = append(specs, spec("chain-"+string(rune('0'+i)), "chain-"+string(rune('0'+i-1))))
	}
	for _, tc := range []struct {
		policy scheduler.Policy
		want   string
	}{{scheduler.FIFO{}, "short-1"}, {scheduler.CriticalPath{}, "chain-1"}} {
		s := scheduler.New(tc.policy, scheduler.Options{})
		s.AddWorker("only", 1, "x86_64", nil)
		addBuild(t, s, "b", false, specs...)
		if got := started(dispatch(s)); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s started %v first, want %s", tc.policy.Name(), got, tc.want)
		}
	}
}

func TestAddBuildRefusesMalformedGraphs(t *testing.T) {
	s := newScheduler(1, 1)
	for name, specs := range map[string][]scheduler.TaskSpec{
		"empty":              nil,
		"duplicate key":      {spec("a"), spec("a")},
		"dependency later":   {spec("b", "a"), spec("a")},
		"dependency missing": {spec("b", "nowhere")},
	} {
		if _, err := s.AddBuild(name, specs, false); err == nil {
			t.Errorf("%s: AddBuild accepted it", name)
		}
		if s.Build(name) != nil {
			t.Errorf("%s: a refused build was left behind", name)
		}
	}
	addBuild(t, s, "dup", false, spec("a"))
	if _, err := s.AddBuild("dup", []scheduler.TaskSpec{spec("z")}, false); err == nil {
		t.Error("a second build with the same id was accepted")
	}
}

func TestARetryFallsBackToTheFailingWorkerWhenNoOtherIsFree(t *testing.T) {
	s := newScheduler(2, 1)
	addBuild(t, s, "b1", false, spec("long"), spec("flaky"))
	as := dispatch(s)
	flaky := as["flaky"]
	s.Failed(flaky.JobID, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: flaky.Worker, Reason: "fetch failed"})
	// The other worker is busy with "long": waiting for it would leave the
	// failing worker's free slot idle for as long as "long" takes.
	again := dispatch(s)
	if a, ok := again["flaky"]; !ok || a.Worker != flaky.Worker {
		t.Fatalf("retry of flaky: got %+v, want it back on the only free worker %s", again, flaky.Worker)
	}
}

func TestARetryPrefersAnotherFreeWorker(t *testing.T) {
	s := newScheduler(2, 1)
	addBuild(t, s, "b1", false, spec("flaky"))
	first := dispatch(s)["flaky"]
	s.Failed(first.JobID, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: first.Worker, Reason: "fetch failed"})
	if again := dispatch(s)["flaky"]; again.Worker == first.Worker {
		t.Fatalf("retry went back to %s although another worker was free", first.Worker)
	}
}

func TestAHeldStepWaitsForItsWorkerAndIsAdopted(t *testing.T) {
	s := newScheduler(2, 2)
	held := spec("lib")
	held.AwaitWorker = "a"
	addBuild(t, s, "b1", false, held, spec("tool"), spec("app", "lib", "tool"))
	if got := started(dispatch(s)); !slices.Equal(got, []string{"tool"}) {
		t.Fatalf("started %v; lib is held for worker a and must not run elsewhere", got)
	}
	if got := s.Held("a"); !slices.Equal(got, []string{"lib"}) {
		t.Fatalf("Held(a) = %v", got)
	}
	events, ok := s.Adopt("lib", "a", "old-job-7")
	if !ok || len(events) != 1 || events[0].Kind != scheduler.StepStarted {
		t.Fatalf("Adopt: ok=%v events=%v", ok, events)
	}
	if task := s.Job("old-job-7"); task == nil || task.Worker() != "a" || task.State() != scheduler.Running {
		t.Fatalf("the adopted job is not current: %+v", task)
	}
	if _, again := s.Adopt("lib", "b", "other-job"); again {
		t.Fatal("a running task was adopted a second time")
	}
	s.Finished("old-job-7")
	if len(s.Held("")) != 0 {
		t.Fatalf("still held: %v", s.Held(""))
	}
}

func TestAnUnheldStepIsDispatchedAgain(t *testing.T) {
	s := newScheduler(1, 1)
	held := spec("lib")
	held.AwaitWorker = "gone"
	addBuild(t, s, "b1", false, held)
	if got := dispatch(s); len(got) != 0 {
		t.Fatalf("started %v while held", started(got))
	}
	s.Unhold("lib")
	if got := started(dispatch(s)); !slices.Equal(got, []string{"lib"}) {
		t.Fatalf("after Unhold: started %v, want lib", got)
	}
	if _, ok := s.Adopt("lib", "a", "late"); ok {
		t.Fatal("a job was adopted for a task already running")
	}
}

func TestAnUntrustedWorkerNeverGetsTheTaskAgain(t *testing.T) {
	s := newScheduler(1, 1)
	addBuild(t, s, "b1", false, spec("lib"))
	first := dispatch(s)["lib"]
	s.Failed(first.JobID, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: first.Worker, Reason: "claimed a result it did not store", Untrusted: true})
	if got := dispatch(s); len(got) != 0 {
		t.Fatalf("lib went back to %s, which misbehaved on it", got["lib"].Worker)
	}
	s.AddWorker("z", 1, "x86_64", nil)
	if again := dispatch(s)["lib"]; again.Worker != "z" {
		t.Fatalf("lib: %+v, want it on the new worker", again)
	}
}

func TestADrainingWorkerFinishesItsTasksAndGetsNoNewOnes(t *testing.T) {
	s := newScheduler(1, 2)
	addBuild(t, s, "b1", false, spec("lib"), spec("tool"), spec("app"))
	first := dispatch(s)
	if len(first) != 2 {
		t.Fatalf("started %v, want two on the two slots", started(first))
	}
	s.Drain("a")
	s.Finished(first["lib"].JobID)
	if got := dispatch(s); len(got) != 0 {
		t.Fatalf("the draining worker was given %v", started(got))
	}
	if ev := s.Finished(first["tool"].JobID); len(ev) == 0 {
		t.Fatal("a running task of a draining worker did not finish")
	}
}

func TestAMissingInputIsBuiltAgainBeforeTheStepRetries(t *testing.T) {
	s := newScheduler(1, 4)
	// base was cached when the build was planned; lib needs it, app stages
	// both (a staging closure: base is not one of its listed deps).
	addBuild(t, s, "b1", false, cached(spec("base")), spec("lib", "base"), spec("app", "lib"), spec("tool", "base"))
	first := dispatch(s)
	if got := started(first); !slices.Equal(got, []string{"lib", "tool"}) {
		t.Fatalf("started %v", got)
	}
	s.Finished(first["lib"].JobID)
	app := dispatch(s)["app"]
	// tool is still running; app finds base missing.
	events, reopened := s.Rebuild(app.JobID, []string{"base"}, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: "a", Reason: "base is missing"})
	if len(reopened) != 1 || reopened[0].Name != "base" {
		t.Fatalf("reopened %v, want base", reopened)
	}
	if len(events) != 1 || events[0].Kind != scheduler.StepFailed || !events[0].WillRetry || events[0].Task.Name != "app" {
		t.Fatalf("events %+v, want app's failure with a retry", events)
	}
	next := dispatch(s)
	if got := started(next); !slices.Equal(got, []string{"base"}) {
		t.Fatalf("after the rebuild request, started %v; want only base (app waits for it)", got)
	}
	s.Finished(next["base"].JobID)
	s.Finished(first["tool"].JobID)
	again := dispatch(s)
	if got := started(again); !slices.Equal(got, []string{"app"}) {
		t.Fatalf("after base was rebuilt, started %v; want app", got)
	}
	if k := kinds(s.Finished(again["app"].JobID)); !slices.Equal(k["b1"], []scheduler.EventKind{scheduler.StepFinished, scheduler.BuildSucceeded}) {
		t.Errorf("app's finish gave %v, want the build to succeed", k)
	}
}

func TestAnInputThatKeepsVanishingEndsTheBuild(t *testing.T) {
	s := newScheduler(1, 1)
	addBuild(t, s, "b1", false, cached(spec("base")), spec("app", "base"))
	for attempt := 1; ; attempt++ {
		app := dispatch(s)["app"]
		events, reopened := s.Rebuild(app.JobID, []string{"base"}, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: "a", Reason: "base is missing"})
		if attempt == 3 {
			if len(reopened) != 0 || !slices.Contains(kinds(events)["b1"], scheduler.BuildFailed) {
				t.Fatalf("third attempt: reopened %v, events %v; want the build to fail without rebuilding base", reopened, kinds(events))
			}
			return
		}
		base := dispatch(s)["base"]
		s.Finished(base.JobID)
	}
}

func TestAMissingKeyThatIsNotDoneIsAnOrdinaryFailure(t *testing.T) {
	s := newScheduler(1, 1)
	addBuild(t, s, "b1", false, spec("app"))
	app := dispatch(s)["app"]
	events, reopened := s.Rebuild(app.JobID, []string{"unknown"}, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: "a", Reason: "x"})
	if len(reopened) != 0 || len(events) != 1 || !events[0].WillRetry {
		t.Errorf("reopened %v events %+v; want a plain retry", reopened, events)
	}
}

func TestTwoStepsMissingTheSameInputBothWaitForOneRebuild(t *testing.T) {
	s := newScheduler(1, 4)
	addBuild(t, s, "b1", false, cached(spec("base")), spec("x", "base"), spec("y", "base"))
	first := dispatch(s)
	miss := scheduler.Failure{Kind: scheduler.SetupFailure, Worker: "a", Reason: "base is missing"}
	if _, reopened := s.Rebuild(first["x"].JobID, []string{"base"}, miss); len(reopened) != 1 {
		t.Fatalf("x's report reopened %v, want base", reopened)
	}
	events, reopened := s.Rebuild(first["y"].JobID, []string{"base"}, miss)
	if len(reopened) != 0 || len(events) != 1 || !events[0].WillRetry {
		t.Fatalf("y's report: reopened %v, events %+v; want y to wait for the same rebuild", reopened, events)
	}
	if got := started(dispatch(s)); !slices.Equal(got, []string{"base"}) {
		t.Fatalf("started %v, want base alone", got)
	}
}

func TestAReportedJobFreesItsSlotButNotItsDependents(t *testing.T) {
	s := newScheduler(1, 1)
	addBuild(t, s, "b1", false, spec("x"), spec("y"), spec("z", "x"))
	x := dispatch(s)["x"]
	s.Reported(x.JobID)
	next := dispatch(s)
	if got := started(next); !slices.Equal(got, []string{"y"}) {
		t.Fatalf("after x was reported done, started %v; want y on the freed slot (z waits for x's confirmation)", got)
	}
	s.Finished(x.JobID)
	s.Finished(next["y"].JobID)
	if got := started(dispatch(s)); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("after x was confirmed, started %v; want z", got)
	}
}

func TestLosingAWorkerFailsItsJobsStillBeingConfirmed(t *testing.T) {
	s := newScheduler(1, 1)
	addBuild(t, s, "b1", false, spec("x"))
	x := dispatch(s)["x"]
	s.Reported(x.JobID)
	events := s.RemoveWorker("a", "lost")
	if len(events) != 1 || events[0].Kind != scheduler.StepFailed || !events[0].WillRetry {
		t.Fatalf("events %+v; want x retried", events)
	}
	if s.Job(x.JobID) != nil {
		t.Error("the lost worker's job is still current")
	}
}

func TestAnExcludedWorkerNeverRunsTheTaskEvenWhenFree(t *testing.T) {
	s := newScheduler(2, 1)
	check := spec("check:lib", "lib")
	check.Excluded = []string{"a"}
	addBuild(t, s, "b1", false, cached(spec("lib")), check)
	s.Drain("b")
	if got := dispatch(s); len(got) != 0 {
		t.Fatalf("started %v on the only free worker, which is excluded", got)
	}
	if s.CouldRun(s.Build("b1").Tasks()[1]) {
		t.Error("CouldRun says yes with only an excluded and a draining worker")
	}
	s.AddWorker("c", 1, "x86_64", nil)
	if got := dispatch(s)["check:lib"]; got.Worker != "c" {
		t.Fatalf("check:lib: %+v; want it on the new worker c", got)
	}
}

func TestExcludeTakesEffectBeforeTheNextDispatch(t *testing.T) {
	s := newScheduler(2, 1)
	addBuild(t, s, "b1", false, spec("lib"), spec("check:lib", "lib"))
	first := dispatch(s)["lib"]
	s.Finished(first.JobID)
	s.Exclude("check:lib", first.Worker)
	if got := dispatch(s)["check:lib"]; got.Worker == first.Worker || got.Worker == "" {
		t.Fatalf("the check ran on %q; lib was built on %s", got.Worker, first.Worker)
	}
}

func TestGivingUpOnAReadyTaskFailsItsBuild(t *testing.T) {
	s := newScheduler(1, 1)
	check := spec("check:lib", "lib")
	check.Excluded = []string{"a"}
	addBuild(t, s, "b1", false, cached(spec("lib")), check)
	if ev := s.GiveUp("lib", scheduler.Failure{Kind: scheduler.BuildFailure, Reason: "x"}); ev != nil {
		t.Errorf("giving up on a done task: %v; want nothing", ev)
	}
	ev := s.GiveUp("check:lib", scheduler.Failure{Kind: scheduler.BuildFailure, Reason: "no worker other than a"})
	if got := kinds(ev)["b1"]; !slices.Equal(got, []scheduler.EventKind{scheduler.StepFailed, scheduler.BuildFailed}) {
		t.Fatalf("events %v; want the step failed, then the build", got)
	}
	if !strings.Contains(ev[1].Reason, "no worker other than a") {
		t.Errorf("build failed with %q; want the reason given", ev[1].Reason)
	}
}
