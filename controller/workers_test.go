package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"distbuild/definitions"
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

// TestAWorkerThatStopsReadingLosesItsJobs has a worker take a job, then
// stop reading its stream while it keeps sending reports, which renew its
// lease: the controller's answers fill the stream's flow-control window and
// a send blocks. Once a send has made no progress for a lease the worker
// is dropped as lost and its step goes to another worker.
func TestAWorkerThatStopsReadingLosesItsJobs(t *testing.T) {
	const lease = 10 * time.Second
	f := startFarm(t, lease)
	// The smallest windows gRPC allows (setting them turns off its
	// growing them as data flows), so that a few thousand answers fill
	// them.
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deaf, err := pb.NewWorkerServiceClient(conn).Work(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := deaf.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: &pb.WorkerRegistration{Name: "deaf", Slots: 4, Arch: "x86_64"}}}); err != nil {
		t.Fatal(err)
	}
	b := f.start("systems/test.morph")
	if ev := b.next(); ev.GetAccepted() == nil {
		t.Fatalf("first event %v", ev)
	}
	for ev := b.next(); ev.GetStepStarted() == nil; ev = b.next() {
	}
	// Reports, each answered, until well past the window; then one every
	// few milliseconds, so the lease alone would never run out.
	report := &pb.WorkRequest{Message: &pb.WorkRequest_State{State: &pb.WorkerState{}}}
	for range 20000 {
		if err := deaf.Send(report); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for ctx.Err() == nil && deaf.Send(report) == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	connected := func() bool {
		resp, err := f.builds.Workers(context.Background(), &pb.WorkersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Workers) > 0
	}
	for i := 0; connected(); i++ {
		if i == 200 {
			t.Fatal("the worker that reads nothing is still connected after 50 leases of virtual time")
		}
		f.clock.Advance(lease / 4)
		time.Sleep(20 * time.Millisecond)
	}
	f.worker("good", 4)
	events := b.wait()
	if got := describe(events); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("build: %s; want it finished on the good worker", got)
	}
	failed := find(events, func(e *pb.BuildEvent) *pb.StepFailed { return e.GetStepFailed() })
	if len(failed) == 0 || failed[0].Worker != "deaf" || !failed[0].WillRetry || !strings.Contains(failed[0].Reason, "it read nothing the controller sent") {
		t.Errorf("failures %v; want the deaf worker's step retried, saying it read nothing", failed)
	}
}

// TestAStepGoesToTheWorkerHoldingItsStagingClosure builds the base
// stratum first, then the apps, whose chunks stage compiler and libc
// (their whole closure; their only direct dependency is the base
// stratum). Of two free workers, the one holding compiler and libc
// locally gets the first of them, though the other has more free slots.
func TestAStepGoesToTheWorkerHoldingItsStagingClosure(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	builder := f.worker("builder", 4)
	if story := describe(f.start("systems/test.morph", func(r *pb.StartBuild) { r.Components = []string{"base"} }).wait()); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("building base: %s", story)
	}
	builder.cancel()
	defs, err := definitions.Open(mapFS(testDefinitions))
	if err != nil {
		t.Fatal(err)
	}
	g, err := defs.Resolve(context.Background(), "systems/test.morph", definitions.CommitsOnly{})
	if err != nil {
		t.Fatal(err)
	}
	warm := f.register(&pb.WorkerRegistration{Name: "warm", Slots: 1, Arch: "x86_64",
		LocalCacheKeys: []string{g.Step("compiler").CacheKey.String(), g.Step("libc").CacheKey.String()}})
	cold := f.worker("cold", 4)
	if story := describe(f.start("systems/test.morph").wait()); !strings.HasSuffix(story, "BUILD-FINISHED") {
		t.Fatalf("building the system: %s", story)
	}
	if got := warm.startedSteps(); len(got) == 0 || (got[0] != "hello" && got[0] != "goodbye") {
		t.Errorf("warm, which holds the apps' whole staging closure, ran %v; cold ran %v; want warm to take hello or goodbye first", got, cold.startedSteps())
	}
}
