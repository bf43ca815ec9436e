package initiator

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "distbuild/proto/distbuild/v1"
)

var (
	now      = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	demoReq  = &pb.StartBuild{RepoUrl: "http://trove/git/definitions.git", Commit: "0123456789abcdef0123456789abcdef01234567", MorphologyPath: "systems/demo-system.morph"}
	running  = &pb.BuildSummary{BuildId: "b2", State: pb.BuildState_BUILD_STATE_RUNNING, Request: demoReq, Created: timestamppb.New(now.Add(-75 * time.Second)), TotalSteps: 22, FinishedSteps: 9}
	resolved = &pb.BuildSummary{BuildId: "b3", State: pb.BuildState_BUILD_STATE_RESOLVING, Request: demoReq, Created: timestamppb.New(now.Add(-time.Second))}
	failedB  = &pb.BuildSummary{BuildId: "b1", State: pb.BuildState_BUILD_STATE_FAILED, Request: demoReq, Created: timestamppb.New(now.Add(-3 * time.Hour)),
		Ended: timestamppb.New(now.Add(-3*time.Hour + 3200*time.Millisecond)), TotalSteps: 22, FinishedSteps: 20, FailedSteps: 1}
)

func TestListIsATableWithAgeDurationStepsAndShortCommit(t *testing.T) {
	var out bytes.Buffer
	if err := writeList(&out, []*pb.BuildSummary{resolved, running, failedB}, now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"BUILD  STATE      AGE    TOOK   STEPS  FAILED  SYSTEM                     COMMIT\n" +
		"b3     resolving  1s     1s     -      0       systems/demo-system.morph  0123456789ab\n" +
		"b2     running    1m15s  1m15s  9/22   0       systems/demo-system.morph  0123456789ab\n" +
		"b1     failed     3h0m   3.2s   20/22  1       systems/demo-system.morph  0123456789ab\n"
	if out.String() != want {
		t.Errorf("list:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestStatusShowsTheSummaryAndEveryStep(t *testing.T) {
	var out bytes.Buffer
	err := writeStatus(&out, &pb.StatusResponse{Build: failedB, Steps: []*pb.StepStatus{
		{Step: &pb.ArtifactRef{StepName: "strbuf"}, State: pb.StepState_STEP_STATE_FINISHED},
		{Step: &pb.ArtifactRef{StepName: "hashkit"}, State: pb.StepState_STEP_STATE_FINISHED, Worker: "worker-2", Attempts: 2},
		{Step: &pb.ArtifactRef{StepName: "demo-broken"}, State: pb.StepState_STEP_STATE_FAILED, Worker: "worker-1", Attempts: 1,
			Reason: "build command \"make\" exited with status 2\nsecond line"},
		{Step: &pb.ArtifactRef{StepName: "demo-failures"}, State: pb.StepState_STEP_STATE_SKIPPED},
	}}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"build:     b1\n" +
		"state:     failed\n" +
		"system:    systems/demo-system.morph\n" +
		"commit:    0123456789abcdef0123456789abcdef01234567 in http://trove/git/definitions.git\n" +
		"submitted: 3h0m ago\n" +
		"took:      3.2s\n" +
		"steps:     20/22 finished, 1 failed\n" +
		"\n" +
		"STEP           STATE     WORKER    ATTEMPTS  TOOK  CHECK  PHASES  REASON\n" +
		"strbuf         finished  (cached)  0         -     -      -       \n" +
		"hashkit        finished  worker-2  2         -     -      -       \n" +
		"demo-broken    failed    worker-1  1         -     -      -       build command \"make\" exited with status 2 ; second line\n" +
		"demo-failures  skipped   -         0         -     -      -       \n"
	if out.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestStatusOfALiveBuildSaysSoFar(t *testing.T) {
	partial := &pb.BuildSummary{BuildId: "b3", State: pb.BuildState_BUILD_STATE_RESOLVING, SubmittedBy: "alice", Created: resolved.Created,
		Request: &pb.StartBuild{Commit: demoReq.Commit, MorphologyPath: demoReq.MorphologyPath, Components: []string{"zlib", "core"}}}
	var out bytes.Buffer
	if err := writeStatus(&out, &pb.StatusResponse{Build: partial}, now); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"system:    systems/demo-system.morph (partial: zlib, core)\n", "submitted: 1s ago by alice\n", "took:      1s so far\n", "steps:     none resolved\n"} {
		if !bytes.Contains(out.Bytes(), []byte(line)) {
			t.Errorf("status lacks %q:\n%s", line, out.String())
		}
	}
	if bytes.Contains(out.Bytes(), []byte("STEP")) {
		t.Errorf("status of a build without steps printed a step table:\n%s", out.String())
	}
}

func TestDurationsArePreciseEnoughForAPerson(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                                   "0s",
		3240 * time.Millisecond:                        "3.2s",
		3*time.Minute + 4600*time.Millisecond:          "3m5s",
		26*time.Hour + 10*time.Minute + 40*time.Second: "26h11m",
	} {
		if got := roughDuration(d); got != want {
			t.Errorf("roughDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
