package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/notify"
	"distbuild/notify/notifytest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/trove"
)

// hookLog makes a hook that appends each event's JSON to a file, and reads
// them back.
type hookLog struct{ path string }

func newHookLog(t *testing.T, events string) (*hookLog, *notify.Hook) {
	t.Helper()
	l := &hookLog{path: filepath.Join(t.TempDir(), "events.jsonl")}
	h, err := notify.ParseHook(fmt.Sprintf("%s=sh -c 'cat >> %s'", events, l.path), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l, h
}

func (l *hookLog) events() []notify.Event { return notifytest.ReadEvents[notify.Event](l.path) }

// waitFor returns the first event the hook got that match accepts,
// waiting up to 10 s.
func (l *hookLog) waitFor(t *testing.T, what string, match func(notify.Event) bool) notify.Event {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, ev := range l.events() {
			if match(ev) {
				return ev
			}
		}
	}
	var names []string
	for _, ev := range l.events() {
		names = append(names, ev.Event)
	}
	t.Fatalf("the hook never got %s (it got %v)", what, names)
	return notify.Event{}
}

// withNotify restarts the farm's controller with these notification
// targets.
func (f *farm) withNotify(targets ...notify.Target) {
	f.cfg.Notify = &notify.Config{Targets: targets, Concurrency: 1}
	f.cfg.DashboardURL = "http://ctl.example:7879/"
	f.restartController()
}

func TestHooksHearOfBuildsStepsAndWorkers(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	hooks, h := newHookLog(t, "*")
	f.withNotify(h)
	w := f.worker("w1", 4)
	w.fail["libc"] = "build command exited with status 2: make"
	events := f.start("systems/test.morph").wait()
	id := events[0].GetAccepted().BuildId

	joined := hooks.waitFor(t, "worker-joined", func(ev notify.Event) bool { return ev.Event == notify.WorkerJoined })
	if joined.Worker.Name != "w1" || joined.Worker.Slots != 4 || joined.Worker.Arch != "x86_64" || joined.URL != "http://ctl.example:7879/workers" {
		t.Errorf("worker-joined: %+v %+v", joined, joined.Worker)
	}
	started := hooks.waitFor(t, "build-started", func(ev notify.Event) bool { return ev.Event == notify.BuildStarted })
	if b := started.Build; b.ID != id || b.System != "systems/test.morph" || b.Commit != f.commit || b.TotalSteps == 0 {
		t.Errorf("build-started: %+v", b)
	}
	stepFailed := hooks.waitFor(t, "step-failed", func(ev notify.Event) bool { return ev.Event == notify.StepFailed })
	if s := stepFailed.Step; s.Name != "libc" || s.Worker != "w1" || s.Kind != "build" || s.ExitCode != 2 || !slices.Contains(s.LogTail, "building libc") {
		t.Errorf("step-failed: %+v", s)
	}
	failed := hooks.waitFor(t, "build-failed", func(ev notify.Event) bool { return ev.Event == notify.BuildFailed })
	if b := failed.Build; b.ID != id || b.State != "failed" || b.FailingStep == nil || b.FailingStep.Name != "libc" ||
		!slices.Contains(b.FailingStep.LogTail, "building libc") || b.FailingStep.Log == "" || b.Ended == nil || !strings.Contains(b.Reason, "make") {
		t.Errorf("build-failed: %+v (failing step %+v)", b, b.FailingStep)
	}
	if failed.URL != "http://ctl.example:7879/builds/"+id {
		t.Errorf("build-failed URL %q", failed.URL)
	}

	w.cancel() // the worker goes away without draining
	lost := hooks.waitFor(t, "worker-lost", func(ev notify.Event) bool { return ev.Event == notify.WorkerLost })
	if lost.Worker.Name != "w1" || lost.Worker.Reason == "" {
		t.Errorf("worker-lost: %+v", lost.Worker)
	}
	seen := map[string]bool{}
	for _, ev := range hooks.events() {
		if seen[ev.ID] {
			t.Errorf("event %s (%s) delivered twice without a restart", ev.ID, ev.Event)
		}
		seen[ev.ID] = true
	}
}

func TestRetriedStepsAreReportedAsRetries(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	hooks, h := newHookLog(t, "step-retried,step-failed")
	f.withNotify(h)
	w := f.worker("w1", 1)
	w.hold["compiler"] = true
	f.start("systems/test.morph")
	w.waitHeld("compiler")
	w.cancel() // lost mid-step: the step is retried
	retried := hooks.waitFor(t, "step-retried", func(ev notify.Event) bool { return ev.Event == notify.StepRetried })
	if s := retried.Step; s.Name != "compiler" || !s.WillRetry || s.Kind != "setup" || s.Attempt != 1 {
		t.Errorf("step-retried: %+v", s)
	}
	for _, ev := range hooks.events() {
		if ev.Event == notify.StepFailed {
			t.Errorf("a retried step was reported failed: %+v", ev.Step)
		}
	}
}

func TestPendingHookRunsSurviveAControllerRestart(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	dir := t.TempDir()
	// Fails until the file "ok" exists; counts its runs.
	h, err := notify.ParseHook(fmt.Sprintf(`build-succeeded=sh -c 'echo run >> %[1]s/runs; test -e %[1]s/ok && cat >> %[1]s/events.jsonl'`, dir), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.withNotify(h)
	f.worker("w1", 4)
	events := f.start("systems/test.morph").wait()
	id := events[0].GetAccepted().BuildId
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if runs, _ := os.ReadFile(dir + "/runs"); len(runs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hook never ran")
		}
	}
	// The retry is due a second later in the controller's virtual time,
	// which does not pass: the delivery is pending when it stops.
	os.WriteFile(dir+"/ok", nil, 0o644)
	f.restartController()
	hooks := &hookLog{path: dir + "/events.jsonl"}
	got := hooks.waitFor(t, "build-succeeded after the restart", func(ev notify.Event) bool { return ev.Event == notify.BuildSucceeded })
	if got.Build.ID != id || got.Build.State != "succeeded" {
		t.Errorf("build-succeeded: %+v", got.Build)
	}
}

func TestABuildsOwnAddressesHearHowItEnded(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	box := notifytest.Start(t, nil, "", "")
	f.withNotify(&notify.Mailer{Server: box.Addr, From: "farm@example.com"})
	w := f.worker("w1", 4)
	w.fail["hello"] = "make: *** [all] Error 1"
	events := f.start("systems/test.morph", func(r *pb.StartBuild) { r.NotifyEmails = []string{"dev@example.com"} }).wait()
	id := events[0].GetAccepted().BuildId
	var msgs []notifytest.Message
	for deadline := time.Now().Add(10 * time.Second); len(msgs) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		msgs = box.Messages()
	}
	if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{"dev@example.com"}) {
		t.Fatalf("messages %+v, want one to dev@example.com", msgs)
	}
	text := msgs[0].Text(t)
	for _, want := range []string{"Build " + id + " failed.", "Step hello on worker w1, exit status 2", "    building hello", "initiator logs " + id + " hello"} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
}

func TestNotifyIsRefusedWithoutAMailServerOrAValidAddress(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	for _, c := range []struct {
		to   string
		code codes.Code
	}{{"dev@example.com", codes.FailedPrecondition}, {"not an address", codes.InvalidArgument}} {
		b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.NotifyEmails = []string{c.to} })
		if _, err := b.recv(); status.Code(err) != c.code {
			t.Errorf("--notify %q: %v, want %s", c.to, err, c.code)
		}
	}
}

func TestAnArtifactEvictedMidBuildIsBuiltAgainAndReported(t *testing.T) {
	// A cache small enough that one upload pushes everything else out.
	f := startFarmOn(t, 10*time.Second, testDefinitions, trove.Config{MaxSizeBytes: 64 << 10})
	hooks, h := newHookLog(t, "missing-input")
	f.withNotify(h)
	w := f.worker("w1", 4)
	w.checkInputs = true
	w.hold["hello"], w.hold["goodbye"] = true, true
	b := f.start("systems/test.morph")
	w.waitHeld("hello")
	w.waitHeld("goodbye")
	// Fills all but 64 bytes: every artifact already stored is evicted.
	if _, err := f.cache.UploadBytes(context.Background(), bytes.Repeat([]byte("f"), 64<<10-64)); err != nil {
		t.Fatal(err)
	}
	libc := w.job("libc").CacheKey
	if _, err := f.cache.GetManifest(context.Background(), mustCacheKey(t, libc)); status.Code(err) != codes.NotFound {
		t.Fatalf("libc's manifest is still in the cache (%v): the test did not evict it", err)
	}
	w.release("hello")
	w.release("goodbye")
	events := b.wait()
	if last := events[len(events)-1]; last.GetBuildFinished() == nil {
		t.Fatalf("the build did not succeed: %s", describe(events))
	}
	started := map[string]int{}
	for _, name := range w.startedSteps() {
		started[name]++
	}
	if started["libc"] != 2 || started["hello"] != 2 || started["goodbye"] != 2 {
		t.Errorf("steps started %v; want libc built again once and both its users retried once", started)
	}
	ev := hooks.waitFor(t, "missing-input", func(ev notify.Event) bool { return ev.Event == notify.MissingInput && ev.Step.MissingStep == "libc" })
	if ev.Step.Name != "hello" || ev.Step.MissingCacheKey != libc || ev.Build == nil {
		t.Errorf("missing-input: %+v", ev.Step)
	}
}

func TestAWorkersFalseClaimOfAMissingInputRebuildsNothing(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.claimMissing = map[string]bool{"hello": true}
	events := f.start("systems/test.morph").wait()
	if last := events[len(events)-1]; last.GetBuildFinished() == nil {
		t.Fatalf("the build did not succeed: %s", describe(events))
	}
	started := map[string]int{}
	for _, name := range w.startedSteps() {
		started[name]++
	}
	if started["compiler"] != 1 || started["libc"] != 1 || started["hello"] != 2 {
		t.Errorf("steps started %v; want hello retried and nothing it stages built again", started)
	}
}
