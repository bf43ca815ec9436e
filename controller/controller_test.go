package controller_test

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/controller"
	pb "distbuild/proto/distbuild/v1"
)

func find[T any](events []*pb.BuildEvent, get func(*pb.BuildEvent) T) []T {
	var out []T
	var zero T
	for _, e := range events {
		if v := get(e); any(v) != any(zero) {
			out = append(out, v)
		}
	}
	return out
}

func TestBuildRunsEveryStepThenNothingTheSecondTime(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	// One slot each: steps ready together must spread over both workers
	// (with more slots, cache locality keeps them on the worker holding
	// their inputs).
	w1, w2 := f.worker("w1", 1), f.worker("w2", 1)
	events := f.start("systems/test.morph").wait()

	names := describe(events)
	if !strings.HasPrefix(names, "accepted resolved(7/7)") || !strings.HasSuffix(names, "BUILD-FINISHED") {
		t.Fatalf("events = %s, want accepted, resolved with 7 of 7 unbuilt, ..., finished", names)
	}
	for i, e := range events {
		if e.Sequence != 0 && e.Sequence != uint64(i+1-countOutputBefore(events, i)) {
			t.Errorf("event %d (%s) has sequence %d", i, eventName(e), e.Sequence)
		}
	}
	// Every step ran exactly once, each after its dependencies.
	finished := find(events, func(e *pb.BuildEvent) string { return e.GetStepFinished().GetStep().GetStepName() })
	order := map[string]int{}
	for i, n := range finished {
		order[n] = i
	}
	if len(finished) != 7 {
		t.Fatalf("finished steps %v, want all 7", finished)
	}
	for _, edge := range [][2]string{{"compiler", "libc"}, {"libc", "base"}, {"base", "hello"}, {"hello", "apps"}, {"apps", "test-system"}} {
		if order[edge[0]] > order[edge[1]] {
			t.Errorf("%s finished after %s, which depends on it", edge[0], edge[1])
		}
	}
	ran := append(w1.startedSteps(), w2.startedSteps()...)
	slices.Sort(ran)
	if want := []string{"apps", "base", "compiler", "goodbye", "hello", "libc", "test-system"}; !slices.Equal(ran, want) {
		t.Errorf("workers ran %v, want each step once: %v", ran, want)
	}
	if len(w1.startedSteps()) == 0 || len(w2.startedSteps()) == 0 {
		t.Errorf("one worker did everything: w1 %v, w2 %v", w1.startedSteps(), w2.startedSteps())
	}
	outputs := find(events, func(e *pb.BuildEvent) string { return string(e.GetStepOutput().GetData()) })
	if !slices.Contains(outputs, "building hello\n") {
		t.Errorf("step output was not relayed: %q", outputs)
	}
	fin := events[len(events)-1].GetBuildFinished()
	if len(fin.Artifacts) != 1 || fin.Artifacts[0].StepName != "test-system" || fin.Artifacts[0].Kind != pb.StepKind_STEP_KIND_SYSTEM {
		t.Errorf("finished with artifacts %v, want the system", fin.Artifacts)
	}

	again := describe(f.start("systems/test.morph").wait())
	if again != "accepted resolved(0/7) BUILD-FINISHED" {
		t.Errorf("second build: %s, want nothing to build", again)
	}
	if n := len(w1.startedSteps()) + len(w2.startedSteps()); n != 7 {
		t.Errorf("workers ran %d steps in total after the second build, want still 7", n)
	}
}

func countOutputBefore(events []*pb.BuildEvent, i int) int {
	n := 0
	for _, e := range events[:i] {
		if e.GetStepOutput() != nil {
			n++
		}
	}
	return n
}

func TestAFailingCommandFailsTheBuildNamingTheStep(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.fail["libc"] = "build command exited with status 2: make"
	events := f.start("systems/test.morph").wait()
	last := events[len(events)-1].GetBuildFailed()
	if last == nil || last.StepName != "libc" || last.ExitCode != 2 || !strings.Contains(last.Reason, "make") {
		t.Fatalf("last event %s, want BuildFailed naming libc with exit 2", describe(events))
	}
	failed := find(events, func(e *pb.BuildEvent) *pb.StepFailed { return e.GetStepFailed() })
	if len(failed) != 1 || failed[0].WillRetry || failed[0].Kind != pb.FailureKind_FAILURE_KIND_BUILD || failed[0].Log == nil {
		t.Errorf("step failures %v, want one final build failure with its log", failed)
	}
	if slices.Contains(w.startedSteps(), "hello") {
		t.Error("a step depending on the failed one still ran")
	}
}

func TestConcurrentBuildsOfTheSameSystemShareSteps(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 1)
	w.hold["compiler"] = true
	b1 := f.start("systems/test.morph")
	w.waitHeld("compiler")
	b2 := f.start("systems/test.morph")
	for _, b := range []*buildWatch{b1, b2} {
		for ev := b.next(); ev.GetGraphResolved() == nil; ev = b.next() {
		}
	}
	w.release("compiler")
	e1, e2 := describe(b1.wait()), describe(b2.wait())
	if !strings.HasSuffix(e1, "BUILD-FINISHED") || !strings.HasSuffix(e2, "BUILD-FINISHED") {
		t.Fatalf("builds ended %q and %q, want both finished", e1, e2)
	}
	if !strings.Contains(e2, "finished:compiler") || !strings.Contains(e2, "finished:test-system") {
		t.Errorf("the second build did not hear about shared steps: %s", e2)
	}
	if n := len(w.startedSteps()); n != 7 {
		t.Errorf("the worker ran %d jobs for two identical builds, want 7: %v", n, w.startedSteps())
	}
}

func TestPartialBuildsBuildOnlyWhatTheyNeed(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	withComponents := func(names ...string) func(*pb.StartBuild) {
		return func(r *pb.StartBuild) { r.Components = names }
	}
	events := f.start("systems/test.morph", withComponents("libc")).wait()
	if got := describe(events); !strings.HasPrefix(got, "accepted resolved(2/2)") || !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("partial build of libc: %s, want 2 steps then success", got)
	}
	ran := w.startedSteps()
	slices.Sort(ran)
	if !slices.Equal(ran, []string{"compiler", "libc"}) {
		t.Errorf("partial build ran %v, want compiler and libc", ran)
	}
	if fin := events[len(events)-1].GetBuildFinished(); len(fin.Artifacts) != 1 || fin.Artifacts[0].StepName != "libc" {
		t.Errorf("partial build's artifacts %v, want libc", fin.Artifacts)
	}

	events = f.start("systems/test.morph", withComponents("hello", "nosuch", "alsono")).wait()
	if got := describe(events); got != "accepted BUILD-FAILED(unknown component(s) nosuch, alsono: not a chunk, stratum or system of test-system)" {
		t.Errorf("unknown component: %s", got)
	}
	if len(w.startedSteps()) != 2 {
		t.Errorf("a build with an unknown component ran steps: %v", w.startedSteps())
	}
}

func TestBadDefinitionsFailTheBuildWithFileAndLine(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.worker("w1", 4)
	f.commit = f.commitDefinitions(map[string]string{"strata/apps.morph": strings.Replace(testDefinitions["strata/apps.morph"], "build-system: manual\n", "build-system: manul\n", 1)})
	events := f.start("systems/test.morph").wait()
	if got := describe(events); got != `accepted BUILD-FAILED(strata/apps.morph:9: stratum "apps": chunk "hello": unknown build system "manul" (known: autotools, cmake, cpan, manual, module-build, python-distutils, python3-distutils, qmake))` {
		t.Errorf("bad definitions: %s", got)
	}
}

func TestInvalidRequestsAreRefusedWithInvalidArgument(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	for name, mutate := range map[string]func(*pb.StartBuild){
		"short commit":       func(r *pb.StartBuild) { r.Commit = "abc" },
		"path escaping repo": func(r *pb.StartBuild) { r.MorphologyPath = "../x.morph" },
		"not a morph":        func(r *pb.StartBuild) { r.MorphologyPath = "systems/x.yaml" },
		"no repository":      func(r *pb.StartBuild) { r.RepoUrl = "" },
		"option as repo":     func(r *pb.StartBuild) { r.RepoUrl = "--upload-pack=evil" },
	} {
		_, err := f.start("systems/test.morph", mutate).stream.Recv()
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
	resp, err := f.builds.List(context.Background(), &pb.ListRequest{IncludeEnded: true})
	if err != nil || len(resp.Builds) != 0 {
		t.Errorf("refused requests left builds behind: %v %v", resp, err)
	}
	if _, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown build: %v, want NotFound", err)
	}
}

func TestAttachReplaysTheWholeStoryAndStatusListCancelWork(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.hold["compiler"] = true
	b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.Detach = true })
	id := b.next().GetAccepted().GetBuildId()
	w.waitHeld("compiler")
	b.cancel() // the detached initiator goes away

	ctx := context.Background()
	st, err := f.builds.Status(ctx, &pb.StatusRequest{BuildId: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.Build.State != pb.BuildState_BUILD_STATE_RUNNING || st.Build.TotalSteps != 7 || st.Steps[0].State != pb.StepState_STEP_STATE_RUNNING || st.Steps[0].Worker != "w1" {
		t.Errorf("status = %v, want running with compiler running on w1", st)
	}
	list, err := f.builds.List(ctx, &pb.ListRequest{})
	if err != nil || len(list.Builds) != 1 || list.Builds[0].BuildId != id {
		t.Errorf("list = %v %v, want the one live build", list, err)
	}

	attach, err := f.builds.Attach(ctx, &pb.AttachRequest{BuildId: id})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 3 {
		resp, err := attach.Recv()
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, eventName(resp.Event))
	}
	if strings.Join(seen, " ") != "accepted resolved(7/7) started:compiler" {
		t.Errorf("attach replayed %v, want the build's history from the start", seen)
	}
	if _, err := f.builds.Cancel(ctx, &pb.CancelRequest{BuildId: id}); err != nil {
		t.Fatal(err)
	}
	resp, err := attach.Recv()
	if err != nil || resp.Event.GetBuildCancelled() == nil {
		t.Fatalf("after Cancel the attached stream got %v %v, want BuildCancelled", resp, err)
	}
	waitFor(t, "the worker to be told to cancel the compiler job", func() bool {
		return !w.runningHeld()
	})
}

// TestACancelledBuildsJobIsNoLongerTheWorkers checks the controller's
// count of a worker's jobs after the worker reports the job of a cancelled
// build failed: the step left the scheduler when the build was cancelled,
// and the job used to stay counted as the worker's for as long as it stayed
// connected.
func TestACancelledBuildsJobIsNoLongerTheWorkers(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	logs := &syncBuffer{}
	f.cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})
	f.restartController()
	w := f.worker("w1", 4)
	w.hold["compiler"] = true
	b := f.start("systems/test.morph")
	id := b.next().GetAccepted().GetBuildId()
	j := w.waitHeld("compiler")
	if _, err := f.builds.Cancel(context.Background(), &pb.CancelRequest{BuildId: id}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to be told to cancel the compiler job", func() bool { return !w.runningHeld() })
	w.mu.Lock()
	w.status[j.JobId] = &pb.JobStatus{JobId: j.JobId, Phase: pb.JobPhase_JOB_PHASE_FAILED,
		Failure: &pb.JobFailure{Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: "cancelled"}}
	w.mu.Unlock()
	w.report()
	waitFor(t, "the controller to acknowledge the failed job", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.status) == 0
	})
	w.cancel()
	waitFor(t, "the controller to see the worker go", func() bool { return strings.Contains(logs.String(), "worker disconnected") })
	if line := lineWith(logs.String(), "worker disconnected"); !strings.Contains(line, " jobs=0 ") {
		t.Errorf("the worker left with %q; want jobs=0, the cancelled build's job being finished", line)
	}
}

// syncBuffer is a log output safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func lineWith(text, s string) string {
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func TestAnInitiatorThatDisconnectsWithoutDetachingHasItsBuildCancelled(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.hold["compiler"] = true
	b := f.start("systems/test.morph")
	id := b.next().GetAccepted().GetBuildId()
	w.waitHeld("compiler")
	b.cancel()
	waitFor(t, "the build to be cancelled after the grace period", func() bool {
		f.clock.Advance(f.cfg.DisconnectGrace)
		st, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: id})
		return err == nil && st.Build.State == pb.BuildState_BUILD_STATE_CANCELLED
	})
}

func TestALostWorkersStepIsRequeuedOnAnother(t *testing.T) {
	f := startFarm(t, 300*time.Millisecond)
	lost := f.worker("lost", 4)
	lost.hold["compiler"] = true
	b := f.start("systems/test.morph")
	lost.waitHeld("compiler")
	// The lost worker goes silent (it never reports): its lease expires,
	// while the good worker's, which joined later, runs on.
	f.clock.Advance(200 * time.Millisecond)
	f.worker("good", 4)
	f.clock.Advance(150 * time.Millisecond)
	events := b.wait()
	got := describe(events)
	if !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("build: %s, want it to finish on the other worker", got)
	}
	failed := find(events, func(e *pb.BuildEvent) *pb.StepFailed { return e.GetStepFailed() })
	if len(failed) != 1 || !failed[0].WillRetry || failed[0].Worker != "lost" || failed[0].Kind != pb.FailureKind_FAILURE_KIND_SETUP {
		t.Errorf("failures %v, want one retried setup failure on the lost worker", failed)
	}
	started := find(events, func(e *pb.BuildEvent) *pb.StepStarted { return e.GetStepStarted() })
	if started[0].Worker != "lost" || started[1].Step.StepName != "compiler" || started[1].Worker != "good" || started[1].Attempt != 2 {
		t.Errorf("compiler started %v then %v, want lost then good (attempt 2)", started[0], started[1])
	}
}

func (w *testWorker) runningHeld() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held) > 0 && !w.cancelled
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStepsRunOnlyOnWorkersWithTheRequestedTags(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	plain := f.worker("plain", 4)
	tagged := f.tagged("tagged", map[string]string{"os": "debian12", "disk": "ssd"})
	events := f.start("systems/test.morph", func(r *pb.StartBuild) { r.WorkerTags = map[string]string{"os": "debian12"} }).wait()
	if got := describe(events); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("build: %s", got)
	}
	if len(plain.startedSteps()) != 0 || len(tagged.startedSteps()) != 7 {
		t.Errorf("untagged worker ran %v, tagged worker %v; want everything on the tagged one", plain.startedSteps(), tagged.startedSteps())
	}
}

func TestOversizedMessagesAreRefusedAndChangeNothing(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	huge := strings.Repeat("x", controller.MaxMessageSize+1)
	_, err := f.start("systems/test.morph", func(r *pb.StartBuild) { r.RepoUrl = huge }).stream.Recv()
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("an oversized StartBuild: %v, want ResourceExhausted", err)
	}
	stream, err := pb.NewWorkerServiceClient(f.conn).Work(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: &pb.WorkerRegistration{Name: huge, Slots: 1, Arch: "x86_64"}}})
	if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("an oversized registration: %v, want ResourceExhausted", err)
	}
	list, err := f.builds.List(context.Background(), &pb.ListRequest{IncludeEnded: true})
	if err != nil || len(list.Builds) != 0 {
		t.Errorf("refused messages left builds behind: %v %v", list, err)
	}
	// The farm still works.
	f.worker("w1", 4)
	if got := describe(f.start("systems/test.morph").wait()); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Errorf("a normal build after the refusals: %s", got)
	}
}

func TestJobsSayWhichStagedChunksMayContainDeviceFiles(t *testing.T) {
	defs := maps.Clone(testDefinitions)
	defs["strata/base.morph"] = strings.Replace(defs["strata/base.morph"], "- name: libc\n  repo: test:libc\n  ref: 2222222222222222222222222222222222222222\n  build-system: manual",
		"- name: libc\n  repo: test:libc\n  ref: 2222222222222222222222222222222222222222\n  morph: strata/base/libc.morph", 1)
	defs["strata/base/libc.morph"] = "name: libc\nkind: chunk\ndevices:\n- {type: c, filename: /dev/null, permissions: '0666', major: 1, minor: 3}\n"
	f := startFarmWith(t, 10*time.Second, defs)
	w := f.worker("w1", 4)
	if got := describe(f.start("systems/test.morph").wait()); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("build: %s", got)
	}
	libcKey := ""
	for _, k := range w.jobs["hello"].Staging {
		if slices.Contains(w.jobs["hello"].DeviceCacheKeys, k) {
			libcKey = k
		}
	}
	if libcKey == "" || len(w.jobs["hello"].DeviceCacheKeys) != 1 {
		t.Fatalf("hello's job lists device keys %v among staging %v, want exactly libc's", w.jobs["hello"].DeviceCacheKeys, w.jobs["hello"].Staging)
	}
	if !slices.Equal(w.jobs["test-system"].DeviceCacheKeys, []string{libcKey}) {
		t.Errorf("the system's job lists device keys %v, want libc's", w.jobs["test-system"].DeviceCacheKeys)
	}
	if len(w.jobs["libc"].DeviceCacheKeys) != 0 || len(w.jobs["compiler"].DeviceCacheKeys) != 0 {
		t.Errorf("jobs not staging libc list device keys: libc %v compiler %v", w.jobs["libc"].DeviceCacheKeys, w.jobs["compiler"].DeviceCacheKeys)
	}
}
