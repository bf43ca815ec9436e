package controller_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

func TestARestartedControllerFinishesBuildsWithoutRerunningFinishedSteps(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w1 := f.worker("w1", 4)
	w1.hold["hello"] = true
	b := f.start("systems/test.morph", func(r *pb.StartBuild) { r.Detach = true })
	id := b.next().GetAccepted().GetBuildId()
	w1.waitHeld("hello")
	before := w1.startedSteps()

	f.restartController()
	w2 := f.worker("w2", 4)
	// w1, which ran hello, never comes back.
	f.clock.Advance(f.cfg.ResumeGrace)
	events := f.attach(id).wait()
	story := describe(events)
	if !strings.HasPrefix(story, "accepted resolved(7/7) started:compiler") || !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("attached after a restart and saw %s; want the whole story from the start to success", story)
	}
	if strings.Count(story, "resolved(") != 1 {
		t.Errorf("the graph was announced twice: %s", story)
	}
	var seq uint64
	for _, e := range events {
		if e.GetStepOutput() != nil {
			continue // live output is not part of the numbered history
		}
		if seq++; e.Sequence != seq {
			t.Errorf("event %s has sequence %d, want %d: the history has gaps or repeats", eventName(e), e.Sequence, seq)
			break
		}
	}
	// Steps that finished before the restart never ran again.
	for _, step := range w2.startedSteps() {
		if slices.Contains(before, step) && step != "hello" {
			t.Errorf("%s ran before the restart and again after it", step)
		}
	}
	if !slices.Contains(w2.startedSteps(), "hello") || !slices.Contains(w2.startedSteps(), "test-system") {
		t.Errorf("after the restart w2 ran %v; want the unfinished steps, hello included", w2.startedSteps())
	}
	st, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: id})
	if err != nil || st.Build.State != pb.BuildState_BUILD_STATE_SUCCEEDED || st.Build.FinishedSteps != 7 {
		t.Errorf("status after the restart: %v %v", st.GetBuild(), err)
	}
}

func TestEndedBuildsAndTheirStepsAreListedAfterARestart(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.fail["goodbye"] = "exit 2"
	events := f.start("systems/test.morph").wait()
	id := events[0].GetAccepted().GetBuildId()
	f.restartController()

	list, err := f.builds.List(context.Background(), &pb.ListRequest{IncludeEnded: true})
	if err != nil || len(list.Builds) != 1 || list.Builds[0].BuildId != id || list.Builds[0].State != pb.BuildState_BUILD_STATE_FAILED {
		t.Fatalf("list after restart: %v %v", list, err)
	}
	st, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: id})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]pb.StepState{}
	for _, s := range st.Steps {
		states[s.Step.StepName] = s.State
	}
	if states["goodbye"] != pb.StepState_STEP_STATE_FAILED || states["compiler"] != pb.StepState_STEP_STATE_FINISHED || states["test-system"] != pb.StepState_STEP_STATE_SKIPPED {
		t.Errorf("step states after restart: %v", states)
	}
	attach, err := f.builds.Attach(context.Background(), &pb.AttachRequest{BuildId: id, FromSequence: 3})
	if err != nil {
		t.Fatal(err)
	}
	var replay []string
	for {
		resp, err := attach.Recv()
		if err != nil {
			break
		}
		replay = append(replay, eventName(resp.Event))
	}
	if len(replay) == 0 || replay[0] != "started:compiler" || !strings.HasPrefix(replay[len(replay)-1], "BUILD-FAILED") {
		t.Errorf("replay from sequence 3 after restart: %v", replay)
	}
}
