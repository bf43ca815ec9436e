package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "distbuild/proto/distbuild/v1"
)

// registerOnce opens a Work stream, registers and returns the first
// answer's error.
func (f *farm) registerOnce(reg *pb.WorkerRegistration) error {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	stream, err := pb.NewWorkerServiceClient(f.conn).Work(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: reg}}); err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

func TestASecondWorkerUnderANameAlreadyConnectedIsRefused(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	first := &pb.WorkerRegistration{Name: "w1", Slots: 1, Arch: "x86_64", InstanceId: "machine-a"}
	if err := f.registerOnce(first); err != nil {
		t.Fatal(err)
	}
	other := &pb.WorkerRegistration{Name: "w1", Slots: 1, Arch: "x86_64", InstanceId: "machine-b"}
	err := f.registerOnce(other)
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "give each worker its own --name") {
		t.Fatalf("a second machine named w1: %v, want AlreadyExists saying what to do", err)
	}
	// The same process reconnecting (its old stream not yet seen gone)
	// replaces its session.
	if err := f.registerOnce(first); err != nil {
		t.Fatalf("w1 reconnecting: %v", err)
	}
}

func TestADrainingWorkerFinishesItsStepAndGetsNoNewOne(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.hold["compiler"] = true
	b := f.start("systems/test.morph")
	job := w.waitHeld("compiler")
	w.send(&pb.WorkRequest{Message: &pb.WorkRequest_State{State: &pb.WorkerState{Draining: true, Jobs: []*pb.JobStatus{
		{JobId: job.JobId, CacheKey: job.CacheKey, Phase: pb.JobPhase_JOB_PHASE_RUNNING}}}}})
	waitFor(t, "the controller to see w1 draining", func() bool {
		st, err := f.builds.Workers(context.Background(), &pb.WorkersRequest{})
		return err == nil && len(st.Workers) == 1 && st.Workers[0].Draining && st.Workers[0].FreeSlots == 0
	})
	w.release("compiler") // the step it holds finishes, and is credited
	other := f.worker("w2", 4)
	events := b.wait()
	if story := describe(events); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("build: %s", story)
	}
	if got := w.startedSteps(); len(got) != 1 {
		t.Errorf("the draining worker was given %v; want only compiler, which it held", got)
	}
	if len(other.startedSteps()) != 6 {
		t.Errorf("w2 built %v, want the other 6 steps", other.startedSteps())
	}
}

func TestAnOperatorCanDrainAConnectedWorker(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 4)
	w.hold["compiler"] = true
	b := f.start("systems/test.morph")
	w.waitHeld("compiler")
	if _, err := f.builds.DrainWorker(context.Background(), &pb.DrainWorkerRequest{Name: "nobody"}); status.Code(err) != codes.NotFound {
		t.Errorf("draining an unknown worker: %v, want NotFound", err)
	}
	resp, err := f.builds.DrainWorker(context.Background(), &pb.DrainWorkerRequest{Name: "w1"})
	if err != nil || resp.Jobs != 1 {
		t.Fatalf("DrainWorker: %v %v, want the one job it holds", resp, err)
	}
	waitFor(t, "the worker to be told to drain", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.toldToDrain
	})
	w.release("compiler")
	other := f.worker("w2", 4)
	if story := describe(b.wait()); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("build: %s", story)
	}
	if got := w.startedSteps(); len(got) != 1 || len(other.startedSteps()) != 6 {
		t.Errorf("w1 (drained) ran %v and w2 %v; want compiler on w1, the rest on w2", got, other.startedSteps())
	}
}
