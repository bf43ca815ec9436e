package initiator_test

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/initiator"
	pb "distbuild/proto/distbuild/v1"
)

func profiledStep(name, worker string, took time.Duration, phases ...string) *pb.StepStatus {
	st := fakeStep(name, pb.StepState_STEP_STATE_FINISHED)
	st.Worker = worker
	st.Duration = durationpb.New(took)
	st.Profile = &pb.StepProfile{Duration: st.Duration, Usage: &pb.ResourceUsage{UserCpuSeconds: 1.5}}
	for i, p := range phases {
		st.Profile.Phases = append(st.Profile.Phases, &pb.PhaseTime{Name: p, Start: durationpb.New(time.Duration(i) * time.Second), Duration: durationpb.New(time.Second + 250*time.Millisecond)})
	}
	return st
}

var lastSeen = timestamppb.New(time.Now().Add(-3 * time.Second))

func testWorkers() *pb.WorkersResponse {
	return &pb.WorkersResponse{Workers: []*pb.WorkerInfo{
		{Name: "w1", Slots: 2, FreeSlots: 1, Arch: "x86_64", Tags: map[string]string{"os": "debian12"},
			Jobs:     []*pb.WorkerJob{{JobId: "j1", StepName: "zlib", Phase: pb.JobPhase_JOB_PHASE_RUNNING, BuildIds: []string{"b1"}}},
			LastSeen: lastSeen},
		{Name: "w2", Slots: 1, FreeSlots: 1, Arch: "aarch64"},
	}}
}

func TestListStatusAndWorkersPrintOneJSONDocumentWithJSON(t *testing.T) {
	b := fakeBuild("b1", pb.BuildState_BUILD_STATE_SUCCEEDED, profiledStep("zlib", "w1", 3*time.Second, "fetch", "build"))
	addr := serveFake(t, &fakeController{workers: testWorkers()}, b)
	for _, c := range []struct {
		args []string
		got  proto.Message
		want proto.Message
	}{
		{[]string{"list", "--all"}, &pb.ListResponse{}, &pb.ListResponse{Builds: []*pb.BuildSummary{b.Build}}},
		{[]string{"status", "b1"}, &pb.StatusResponse{}, b},
		{[]string{"workers"}, &pb.WorkersResponse{}, testWorkers()},
	} {
		status, out, errOut := run(append(c.args, "--json", "--controller", addr)...)
		if status != initiator.ExitOK {
			t.Errorf("%v --json: exit %d, %s", c.args, status, errOut)
			continue
		}
		if err := protojson.Unmarshal([]byte(out), c.got); err != nil {
			t.Errorf("%v --json printed %q, not one JSON document of the response: %v", c.args, out, err)
			continue
		}
		if !proto.Equal(c.got, c.want) {
			t.Errorf("%v --json gave %v; want %v", c.args, c.got, c.want)
		}
	}
}

func TestStatusShowsEachStepsWorkerDurationAndPhases(t *testing.T) {
	addr := serve(t, fakeBuild("b1", pb.BuildState_BUILD_STATE_RUNNING,
		profiledStep("zlib", "w1", 3*time.Second, "fetch", "stage", "build", "pack", "upload"),
		fakeStep("core", pb.StepState_STEP_STATE_WAITING)))
	status, out, errOut := run("status", "--controller", addr, "b1")
	if status != initiator.ExitOK {
		t.Fatalf("exit %d: %s", status, errOut)
	}
	if !regexp.MustCompile(`(?m)^zlib\s+finished\s+w1\s+1\s+3\.0s\s+-\s+fetch 1\.2s, stage 1\.2s, build 1\.2s, pack 1\.2s, upload 1\.2s\s`).MatchString(out) {
		t.Errorf("status shows\n%s\nwant zlib's worker, 3.0s and each phase's time", out)
	}
	if !regexp.MustCompile(`(?m)^STEP\s+STATE\s+WORKER\s+ATTEMPTS\s+TOOK\s+CHECK\s+PHASES\s+REASON$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^core\s+waiting\s+w1\s+1\s+-\s+-\s+-\s*$`).MatchString(out) {
		t.Errorf("status shows\n%s\nwant a TOOK and PHASES column, with - for a step that has not run", out)
	}
}

func TestStatusShowsEachStepsLatestCheckAndWhatDiffers(t *testing.T) {
	same := fakeStep("zlib", pb.StepState_STEP_STATE_FINISHED)
	same.Check = &pb.CheckResult{Outcome: pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE, BuiltBy: "w1", CheckedBy: "w2"}
	differs := fakeStep("stamp", pb.StepState_STEP_STATE_FINISHED)
	differs.Check = &pb.CheckResult{Outcome: pb.CheckOutcome_CHECK_OUTCOME_DIFFERS, BuiltBy: "w1", CheckedBy: "w2", MoreDifferences: 3,
		Differences: []*pb.FileDifference{{Artifact: "stamp-bins", Path: "usr/share/stamp", What: "content", Cached: "sha256:aa (3 bytes)", Rebuilt: "sha256:bb (3 bytes)"}}}
	addr := serve(t, fakeBuild("b1", pb.BuildState_BUILD_STATE_FAILED, same, differs, fakeStep("core", pb.StepState_STEP_STATE_SKIPPED)))
	_, out, _ := run("status", "--controller", addr, "b1")
	for _, want := range []string{
		`(?m)^zlib\s+finished\s+\S+\s+\d+\s+\S+\s+reproducible\s`,
		`(?m)^stamp\s+finished\s+\S+\s+\d+\s+\S+\s+differs\s`,
		`(?m)^core\s+skipped\s+\S+\s+\d+\s+\S+\s+-\s`,
		`(?m)^stamp: NOT reproducible: 4 difference\(s\) \(built by w1, rebuilt on w2\)$`,
		`(?m)^  stamp-bins: usr/share/stamp: content differs: sha256:aa \(3 bytes\) \(cached\) vs sha256:bb \(3 bytes\) \(rebuilt\)$`,
		`(?m)^  \.\.\. and 3 more$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status shows\n%s\nwant a line matching %s", out, want)
		}
	}
}

func TestWorkersListsSlotsTagsJobsAndLastSeen(t *testing.T) {
	addr := serveFake(t, &fakeController{workers: testWorkers()})
	status, out, errOut := run("workers", "--controller", addr)
	if status != initiator.ExitOK {
		t.Fatalf("exit %d: %s", status, errOut)
	}
	if !regexp.MustCompile(`(?m)^w1\s+1/2 free\s+x86_64\s+os=debian12\s+[\d.]+s ago\s+zlib \(b1\)$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^w2\s+1/1 free\s+aarch64\s+-\s+-\s+-$`).MatchString(out) {
		t.Errorf("workers shows\n%s\nwant w1 with its slots, tags, last seen and job, and idle w2", out)
	}
}

// svgDoc is what the timeline test reads of the chart.
type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	Lanes   []struct {
		Class  string `xml:"class,attr"`
		Worker string `xml:"data-worker,attr"`
		Slot   int    `xml:"data-slot,attr"`
	} `xml:"g"`
	Rects []struct {
		Class string  `xml:"class,attr"`
		Step  string  `xml:"data-step,attr"`
		X     float64 `xml:"x,attr"`
		Width float64 `xml:"width,attr"`
		Title string  `xml:"title"`
	} `xml:"rect"`
}

func TestTimelineDrawsABarPerAttemptOnALanePerWorkerSlotWithTheCriticalPath(t *testing.T) {
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(s float64) *timestamppb.Timestamp {
		return timestamppb.New(t0.Add(time.Duration(s * float64(time.Second))))
	}
	ref := func(name string) *pb.ArtifactRef { return &pb.ArtifactRef{StepName: name} }
	started := func(s float64, name, worker string) *pb.BuildEvent {
		return &pb.BuildEvent{Time: at(s), Event: &pb.BuildEvent_StepStarted{StepStarted: &pb.StepStarted{Step: ref(name), Worker: worker}}}
	}
	finished := func(s float64, name string) *pb.BuildEvent {
		return &pb.BuildEvent{Time: at(s), Event: &pb.BuildEvent_StepFinished{StepFinished: &pb.StepFinished{Step: ref(name)}}}
	}
	events := []*pb.BuildEvent{
		{Time: at(0), Event: &pb.BuildEvent_Accepted{Accepted: &pb.BuildAccepted{BuildId: "b1"}}},
		{Time: at(0), Event: &pb.BuildEvent_GraphResolved{GraphResolved: &pb.GraphResolved{Steps: []*pb.StepInfo{
			{Name: "zlib"}, {Name: "png", DependsOn: []string{"zlib"}}, {Name: "docs"}, {Name: "core", DependsOn: []string{"png", "docs"}}, {Name: "cached", Cached: true},
		}}}},
		started(1, "zlib", "w1"), started(1, "docs", "w1"), started(1.5, "png", "w2"),
		// png fails on w2 for the farm's reasons and runs again on w1.
		{Time: at(2), Event: &pb.BuildEvent_StepFailed{StepFailed: &pb.StepFailed{Step: ref("png"), Worker: "w2", WillRetry: true}}},
		finished(3, "zlib"), started(3, "png", "w1"), finished(4, "docs"), finished(6, "png"),
		started(6, "core", "w1"), finished(9, "core"),
		{Time: at(9), Event: &pb.BuildEvent_BuildFinished{BuildFinished: &pb.BuildFinished{}}},
	}
	for i, ev := range events {
		ev.Sequence = uint64(i + 1)
	}
	b := fakeBuild("b1", pb.BuildState_BUILD_STATE_SUCCEEDED)
	b.Build.Created, b.Build.Ended = at(0), at(9)
	addr := serveFake(t, &fakeController{events: map[string][]*pb.BuildEvent{"b1": events}, workers: &pb.WorkersResponse{Workers: []*pb.WorkerInfo{
		{Name: "w1", Slots: 2}, {Name: "w2", Slots: 3}}}}, b)
	dir := t.TempDir()
	status, out, errOut := run("timeline", "--controller", addr, "--svg", filepath.Join(dir, "b1.svg"), "b1")
	if status != initiator.ExitOK {
		t.Fatalf("exit %d: %s%s", status, out, errOut)
	}
	data, err := os.ReadFile(filepath.Join(dir, "b1.svg"))
	if err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the chart is not well-formed SVG: %v\n%s", err, data)
	}
	var lanes []string
	for _, l := range doc.Lanes {
		if l.Class == "lane" {
			lanes = append(lanes, l.Worker+"/"+string(rune('0'+l.Slot)))
		}
	}
	if got, want := strings.Join(lanes, " "), "w1/0 w1/1 w2/0 w2/1 w2/2"; got != want {
		t.Errorf("lanes %q; want one per worker slot: %q", got, want)
	}
	bars := map[string][]string{}
	var critical []string
	for _, r := range doc.Rects {
		if !strings.HasPrefix(r.Class, "bar ") {
			continue
		}
		classes := strings.Fields(r.Class)
		bars[r.Step] = append(bars[r.Step], classes[1])
		if strings.Contains(r.Class, "critical") {
			critical = append(critical, r.Step)
		}
		if r.Width <= 0 || !strings.HasPrefix(r.Title, r.Step+" on w") {
			t.Errorf("bar %s: width %v, tooltip %q; want a visible bar naming its step and worker", r.Step, r.Width, r.Title)
		}
	}
	want := map[string][]string{"zlib": {"finished"}, "docs": {"finished"}, "png": {"retried", "finished"}, "core": {"finished"}}
	if len(bars) != len(want) {
		t.Errorf("bars for %v; want one per attempt at each built step (none for the cached one): %v", bars, want)
	}
	for step, outcomes := range want {
		if strings.Join(bars[step], ",") != strings.Join(outcomes, ",") {
			t.Errorf("bars of %s: %v; want %v", step, bars[step], outcomes)
		}
	}
	if got := strings.Join(critical, " "); got != "zlib png core" {
		t.Errorf("critical path %q; want zlib png core (docs ended before png)", got)
	}
}
