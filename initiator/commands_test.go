package initiator_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/initiator"
	pb "distbuild/proto/distbuild/v1"
)

// fakeController answers Status and Cancel from a fixed set of builds, and
// Attach from their recorded events.
type fakeController struct {
	pb.UnimplementedBuildServiceServer
	builds  map[string]*pb.StatusResponse
	events  map[string][]*pb.BuildEvent
	workers *pb.WorkersResponse
}

func (f *fakeController) List(context.Context, *pb.ListRequest) (*pb.ListResponse, error) {
	resp := &pb.ListResponse{}
	for _, b := range f.builds {
		resp.Builds = append(resp.Builds, b.Build)
	}
	return resp, nil
}

func (f *fakeController) Workers(context.Context, *pb.WorkersRequest) (*pb.WorkersResponse, error) {
	if f.workers == nil {
		return &pb.WorkersResponse{}, nil
	}
	return f.workers, nil
}

func (f *fakeController) Attach(req *pb.AttachRequest, stream pb.BuildService_AttachServer) error {
	if _, ok := f.builds[req.BuildId]; !ok {
		return status.Errorf(codes.NotFound, "no build %q", req.BuildId)
	}
	for _, ev := range f.events[req.BuildId] {
		if ev.Sequence >= req.FromSequence {
			if err := stream.Send(&pb.AttachResponse{Event: ev}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fakeController) Status(_ context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	if b, ok := f.builds[req.BuildId]; ok {
		return b, nil
	}
	return nil, status.Errorf(codes.NotFound, "no build %q", req.BuildId)
}

func (f *fakeController) Cancel(_ context.Context, req *pb.CancelRequest) (*pb.CancelResponse, error) {
	b, ok := f.builds[req.BuildId]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no build %q", req.BuildId)
	}
	if b.Build.State == pb.BuildState_BUILD_STATE_RUNNING {
		b.Build.State = pb.BuildState_BUILD_STATE_CANCELLED
	}
	return &pb.CancelResponse{Build: b.Build}, nil
}

func fakeBuild(id string, state pb.BuildState, steps ...*pb.StepStatus) *pb.StatusResponse {
	return &pb.StatusResponse{Build: &pb.BuildSummary{BuildId: id, State: state, Request: &pb.StartBuild{MorphologyPath: "systems/x.morph"}}, Steps: steps}
}

func fakeStep(name string, state pb.StepState) *pb.StepStatus {
	return &pb.StepStatus{Step: &pb.ArtifactRef{StepName: name, Kind: pb.StepKind_STEP_KIND_CHUNK}, State: state, Attempts: 1, Worker: "w1"}
}

// serve runs a fake controller on loopback and returns its address.
func serve(t *testing.T, builds ...*pb.StatusResponse) string {
	t.Helper()
	return serveEvents(t, nil, builds...)
}

// serveEvents is serve with the events Attach replays, by build id.
func serveEvents(t *testing.T, events map[string][]*pb.BuildEvent, builds ...*pb.StatusResponse) string {
	t.Helper()
	return serveFake(t, &fakeController{events: events}, builds...)
}

// serveFake runs f, with builds added, on loopback and returns its address.
func serveFake(t *testing.T, f *fakeController, builds ...*pb.StatusResponse) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.builds = map[string]*pb.StatusResponse{}
	for _, b := range builds {
		f.builds[b.Build.BuildId] = b
	}
	srv := grpc.NewServer()
	pb.RegisterBuildServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestBuildCommandsNameTheControllerTheyCannotReach(t *testing.T) {
	for _, args := range [][]string{{"attach", "b1"}, {"list"}, {"status", "b1"}, {"cancel", "b1"}, {"logs", "b1", "zlib"}, {"workers"}, {"timeline", "--svg", "/nonexistent/x.svg", "b1"}} {
		status, _, errOut := run(append(args, "--controller", nowhere)...)
		if want := "initiator " + args[0] + ": cannot reach the controller at " + nowhere + ": "; status != initiator.ExitFailure || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want one line starting %q", args, status, errOut, want)
		}
	}
}

func TestBuildCommandsRejectWrongArgumentsWithUsage(t *testing.T) {
	for _, args := range [][]string{{"attach"}, {"list", "extra"}, {"status"}, {"cancel", "a", "b"}, {"logs", "b1"}, {"status", "--no-such-flag", "b1"}, {"workers", "extra"}, {"timeline"}} {
		if status, _, errOut := run(args...); status != initiator.ExitUsage || !strings.Contains(errOut, "initiator "+args[0]) {
			t.Errorf("%v: exit %d, stderr %q; want usage and exit %d", args, status, errOut, initiator.ExitUsage)
		}
	}
}

func TestUnknownBuildsAreReportedAsSuch(t *testing.T) {
	addr := serve(t)
	for _, args := range [][]string{{"attach", "nosuch"}, {"status", "nosuch"}, {"cancel", "nosuch"}, {"logs", "nosuch", "zlib"}} {
		if status, _, errOut := run(append(args, "--controller", addr)...); status != initiator.ExitFailure || errOut != "initiator "+args[0]+": no build \"nosuch\"\n" {
			t.Errorf("%v: exit %d, stderr %q; want exactly: no build \"nosuch\"", args, status, errOut)
		}
	}
}

func TestStatusExitsWithFailureOnlyForFailedAndCancelledBuilds(t *testing.T) {
	addr := serve(t,
		fakeBuild("ok", pb.BuildState_BUILD_STATE_SUCCEEDED), fakeBuild("live", pb.BuildState_BUILD_STATE_RUNNING), fakeBuild("resolving", pb.BuildState_BUILD_STATE_RESOLVING),
		fakeBuild("bad", pb.BuildState_BUILD_STATE_FAILED), fakeBuild("stopped", pb.BuildState_BUILD_STATE_CANCELLED))
	for id, want := range map[string]int{"ok": 0, "live": 0, "resolving": 0, "bad": 1, "stopped": 1} {
		if status, out, errOut := run("status", "--controller", addr, id); status != want || !strings.Contains(out, "build:     "+id+"\n") {
			t.Errorf("status %s: exit %d, want %d\n%s%s", id, status, want, out, errOut)
		}
	}
}

func TestCancelPrintsTheResultingState(t *testing.T) {
	addr := serve(t, fakeBuild("live", pb.BuildState_BUILD_STATE_RUNNING), fakeBuild("ok", pb.BuildState_BUILD_STATE_SUCCEEDED))
	if status, out, errOut := run("cancel", "--controller", addr, "live"); status != initiator.ExitOK || out != "build live: cancelled\n" {
		t.Errorf("cancelling a running build: exit %d, %q %q", status, out, errOut)
	}
	if status, out, _ := run("cancel", "--controller", addr, "ok"); status != initiator.ExitFailure || !strings.Contains(out, "build ok: succeeded (it had already ended; nothing was cancelled)") {
		t.Errorf("cancelling a finished build: exit %d, %q; want failure saying it had ended", status, out)
	}
}

func TestLogsExplainsWhyThereIsNoLog(t *testing.T) {
	addr := serve(t, fakeBuild("b1", pb.BuildState_BUILD_STATE_RUNNING,
		fakeStep("zlib", pb.StepState_STEP_STATE_RUNNING), fakeStep("core", pb.StepState_STEP_STATE_WAITING), fakeStep("late", pb.StepState_STEP_STATE_SKIPPED),
		fakeStep("stopped", pb.StepState_STEP_STATE_CANCELLED)))
	for stepName, want := range map[string]string{
		"stopped": "step stopped of build b1 was cancelled with its build and its worker stored no log of it",
		"nosuch":  `build b1 has no step "nosuch" (initiator status b1 lists its steps)`,
		"zlib":    "step zlib of build b1 has no log yet: it is running; follow its output with: initiator attach b1",
		"core":    "step core of build b1 has no log yet: it is waiting; follow its output with: initiator attach b1",
		"late":    "step late of build b1 never ran, so it has no log",
	} {
		status, out, errOut := run("logs", "--controller", addr, "--cache", nowhere, "b1", stepName)
		if status != initiator.ExitFailure || out != "" || !strings.HasPrefix(errOut, "initiator logs: "+want) {
			t.Errorf("logs b1 %s: exit %d, stdout %q, stderr %q; want failure: %s", stepName, status, out, errOut, want)
		}
	}
}

func TestAttachToAnEndedBuildReportsItsOwnDuration(t *testing.T) {
	// The build took 44s and ended long before anyone attached.
	created := time.Now().Add(-5 * time.Minute)
	ended := created.Add(44 * time.Second)
	b := fakeBuild("b1", pb.BuildState_BUILD_STATE_SUCCEEDED)
	b.Build.Created, b.Build.Ended = timestamppb.New(created), timestamppb.New(ended)
	addr := serveEvents(t, map[string][]*pb.BuildEvent{"b1": {
		{Sequence: 1, Time: timestamppb.New(created), Event: &pb.BuildEvent_Accepted{Accepted: &pb.BuildAccepted{BuildId: "b1"}}},
		{Sequence: 2, Time: timestamppb.New(created), Event: &pb.BuildEvent_GraphResolved{GraphResolved: &pb.GraphResolved{TotalSteps: 1}}},
		{Sequence: 3, Time: timestamppb.New(ended), Event: &pb.BuildEvent_BuildFinished{BuildFinished: &pb.BuildFinished{}}},
	}}, b)
	t.Chdir(t.TempDir())
	// --from 2 skips the accepted event: the start comes from the status.
	for _, from := range []string{"1", "2"} {
		status, out, errOut := run("attach", "--controller", addr, "--cache", nowhere, "--from", from, "b1")
		if status != initiator.ExitOK || !strings.Contains(out, "build succeeded in 44s:") {
			t.Errorf("attach --from %s: exit %d, stdout %q, stderr %q; want success in 44s", from, status, out, errOut)
		}
	}
}
