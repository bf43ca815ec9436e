package initiator_test

import (
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/initiator"
	pb "distbuild/proto/distbuild/v1"
)

// flakyController loses its Build streams after a few events, the way a
// controller that crashes and restarts does, and serves the rest of the
// story on Attach.
type flakyController struct {
	pb.UnimplementedBuildServiceServer
	story []*pb.BuildEvent

	mu       sync.Mutex
	attaches []uint64 // from_sequence of each Attach
}

func (f *flakyController) Build(stream pb.BuildService_BuildServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	for _, ev := range f.story[:3] {
		stream.Send(&pb.BuildResponse{Event: ev})
	}
	return status.Error(codes.Unavailable, "the controller went away")
}

func (f *flakyController) Attach(req *pb.AttachRequest, stream pb.BuildService_AttachServer) error {
	f.mu.Lock()
	f.attaches = append(f.attaches, req.FromSequence)
	first := len(f.attaches) == 1
	f.mu.Unlock()
	if first {
		// Still restarting.
		return status.Error(codes.Unavailable, "not yet")
	}
	for _, ev := range f.story[req.FromSequence-1:] {
		stream.Send(&pb.AttachResponse{Event: ev})
	}
	return nil
}

func TestBuildRejoinsItsBuildWhenTheControllerComesBack(t *testing.T) {
	_, system := pushedCheckout(t)
	ref := &pb.ArtifactRef{StepName: "zlib", Kind: pb.StepKind_STEP_KIND_CHUNK}
	story := []*pb.BuildEvent{
		{Sequence: 1, Event: &pb.BuildEvent_Accepted{Accepted: &pb.BuildAccepted{BuildId: "b1"}}},
		{Sequence: 2, Event: &pb.BuildEvent_GraphResolved{GraphResolved: &pb.GraphResolved{TotalSteps: 1, UnbuiltSteps: 1}}},
		{Sequence: 3, Event: &pb.BuildEvent_StepStarted{StepStarted: &pb.StepStarted{Step: ref, Worker: "w1", Attempt: 1}}},
		{Sequence: 4, Event: &pb.BuildEvent_StepFinished{StepFinished: &pb.StepFinished{Step: ref, Worker: "w1"}}},
		{Sequence: 5, Event: &pb.BuildEvent_BuildFinished{BuildFinished: &pb.BuildFinished{}}},
	}
	fake := &flakyController{story: story}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterBuildServiceServer(srv, fake)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	code, out, errOut := run("build", "--controller", lis.Addr().String(), system)
	if code != initiator.ExitOK || !strings.Contains(out, "build succeeded") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if strings.Count(out, "finished zlib") != 1 || strings.Count(out, "accepted") != 1 {
		t.Errorf("events were repeated or lost across the reconnect:\n%s", out)
	}
	if !strings.Contains(errOut, "re-joining build b1") {
		t.Errorf("stderr does not say the build was re-joined: %q", errOut)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.attaches) != 2 || fake.attaches[1] != 4 {
		t.Errorf("attached from %v; want a retry, then from sequence 4", fake.attaches)
	}
}
