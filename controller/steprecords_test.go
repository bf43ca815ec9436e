package controller_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "distbuild/proto/distbuild/v1"
)

func testProfile(samples int) *pb.StepProfile {
	p := &pb.StepProfile{
		Duration: durationpb.New(3 * time.Second),
		Phases: []*pb.PhaseTime{
			{Name: "fetch", Start: durationpb.New(0), Duration: durationpb.New(time.Second)},
			{Name: "build", Start: durationpb.New(time.Second), Duration: durationpb.New(2 * time.Second)},
		},
		Usage: &pb.ResourceUsage{UserCpuSeconds: 2.5, SystemCpuSeconds: 0.25, PeakMemoryBytes: 1 << 20, ReadBytes: 10, WrittenBytes: 20},
	}
	for i := range samples {
		p.Samples = append(p.Samples, &pb.ResourceSample{Offset: durationpb.New(time.Duration(i) * time.Second), CpuCores: 1, MemoryBytes: 1 << 20})
	}
	return p
}

func TestStepProfilesAreKeptWithTheirStepsBoundedAndSurviveARestart(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	small, huge := testProfile(3), testProfile(5000)
	f.register(&pb.WorkerRegistration{Name: "w1", Slots: 4, Arch: "x86_64"}, func(w *testWorker) {
		w.profiles = map[string]*pb.StepProfile{"hello": small, "goodbye": huge}
		w.fail["goodbye"] = "broken"
	})
	events := f.start("systems/test.morph", func(r *pb.StartBuild) { r.KeepGoing = true }).wait()
	id := events[0].GetAccepted().GetBuildId()
	var finished *pb.StepFinished
	var failed *pb.StepFailed
	for _, e := range events {
		if sf := e.GetStepFinished(); sf.GetStep().GetStepName() == "hello" {
			finished = sf
		}
		if sf := e.GetStepFailed(); sf.GetStep().GetStepName() == "goodbye" {
			failed = sf
		}
	}
	if !proto.Equal(finished.GetProfile(), small) {
		t.Errorf("hello's StepFinished carries profile %v; want the worker's %v", finished.GetProfile(), small)
	}
	if n := len(failed.GetProfile().GetSamples()); failed.GetProfile() == nil || n == 0 || n >= 5000 {
		t.Errorf("goodbye's StepFailed carries a profile with %d samples; want the worker's, cut to a bound", n)
	}
	check := func(when string) {
		t.Helper()
		st, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: id})
		if err != nil {
			t.Fatal(err)
		}
		steps := map[string]*pb.StepStatus{}
		for _, s := range st.Steps {
			steps[s.Step.StepName] = s
		}
		if h := steps["hello"]; !proto.Equal(h.GetProfile(), small) || h.GetWorker() != "w1" {
			t.Errorf("%s: hello's status has worker %q and profile %v; want w1's report", when, h.GetWorker(), h.GetProfile())
		}
		if g := steps["goodbye"]; g.GetProfile() == nil || g.GetDuration().AsDuration() != 3*time.Second {
			t.Errorf("%s: goodbye's status has duration %v and profile %v; want the failed attempt's", when, g.GetDuration(), g.GetProfile() != nil)
		}
	}
	check("before a restart")
	f.restartController()
	check("after a restart")
}

func TestWorkersListsConnectedWorkersWithTheirSlotsTagsAndJobs(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w1 := f.tagged("w1", map[string]string{"os": "debian12"})
	w1.hold["hello"] = true
	f.worker("w2", 2)
	b := f.start("systems/test.morph")
	id := b.next().GetAccepted().GetBuildId()
	w1.waitHeld("hello")
	resp, err := f.builds.Workers(context.Background(), &pb.WorkersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Workers) != 2 || resp.Workers[0].Name != "w1" || resp.Workers[1].Name != "w2" {
		t.Fatalf("workers %v; want w1 and w2, by name", resp.Workers)
	}
	w := resp.Workers[0]
	// goodbye may run on w1 beside hello, or on w2.
	if w.Slots != 4 || int(w.FreeSlots) != 4-len(w.Jobs) || w.Arch != "x86_64" || !maps.Equal(w.Tags, map[string]string{"os": "debian12"}) ||
		w.LastSeen == nil || w.Connected == nil {
		t.Errorf("w1 listed as %v; want 4 slots, those without jobs free, x86_64, os=debian12, times", w)
	}
	i := slices.IndexFunc(w.Jobs, func(j *pb.WorkerJob) bool { return j.StepName == "hello" })
	if i < 0 || !slices.Equal(w.Jobs[i].BuildIds, []string{id}) || w.Jobs[i].JobId == "" {
		t.Errorf("w1's jobs %v; want hello for build %s", w.Jobs, id)
	}
	if w2 := resp.Workers[1]; w2.Slots != 2 || int(w2.FreeSlots) != 2-len(w2.Jobs) {
		t.Errorf("w2 listed as %v; want 2 slots, those without jobs free", w2)
	}
	w1.release("hello")
	b.wait()
}
