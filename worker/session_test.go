package worker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"distbuild/clock"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/step"
)

// hangBound is how long a test waits for something that should happen
// promptly before calling it a hang; it is no measure of speed.
const hangBound = 30 * time.Second

// fakeController is the controller's end of the Work stream, in memory:
// each session is handed to the test, which ends it when it likes.
type fakeController struct {
	pb.UnimplementedWorkerServiceServer
	sessions chan *controllerSession
}

type controllerSession struct {
	stream grpc.BidiStreamingServer[pb.WorkRequest, pb.WorkResponse]
	end    chan error
}

func (c *fakeController) Work(stream grpc.BidiStreamingServer[pb.WorkRequest, pb.WorkResponse]) error {
	s := &controllerSession{stream: stream, end: make(chan error, 1)}
	c.sessions <- s
	select {
	case err := <-s.end:
		return err
	case <-stream.Context().Done():
		return nil
	}
}

// next waits for the worker's next session and checks it registers first.
func (c *fakeController) next(t *testing.T) *controllerSession {
	t.Helper()
	select {
	case s := <-c.sessions:
		msg, err := s.stream.Recv()
		if err != nil || msg.GetRegister().GetName() != "w1" {
			t.Fatalf("the session began with %v, %v; want the worker's registration", msg, err)
		}
		return s
	case <-time.After(hangBound):
		t.Fatal("the worker did not connect")
		return nil
	}
}

// until reads what the worker sends until ok accepts a message.
func (s *controllerSession) until(t *testing.T, what string, ok func(*pb.WorkRequest) bool) {
	t.Helper()
	got := make(chan struct{})
	go func() {
		defer close(got)
		for {
			msg, err := s.stream.Recv()
			if err != nil || ok(msg) {
				return
			}
		}
	}()
	select {
	case <-got:
	case <-time.After(hangBound):
		t.Fatalf("the worker never sent %s", what)
	}
}

// jobIn finds job id in a state report, nil when the message is not one
// or lacks it.
func jobIn(msg *pb.WorkRequest, id string) *pb.JobStatus {
	for _, j := range msg.GetState().GetJobs() {
		if j.JobId == id {
			return j
		}
	}
	return nil
}

// recordingClock is a fake clock that says how long each AfterFunc
// waits, which for the session is the reconnect backoff.
type recordingClock struct {
	*clock.Fake
	waits chan time.Duration
}

func (c recordingClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	// Armed before it is told, so the test's Advance cannot come first.
	timer := c.Fake.AfterFunc(d, f)
	c.waits <- d
	return timer
}

func (c recordingClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(hangBound):
		t.Fatal("the worker did not wait to reconnect")
		return 0
	}
}

// blockingRunner runs a job until its context ends, after saying it runs
// and printing hello, and fails it with the context's cause.
type blockingRunner struct{}

func (blockingRunner) Run(ctx context.Context, job *pb.Job, rep step.Reporter) step.Outcome {
	rep.Phase(pb.JobPhase_JOB_PHASE_RUNNING)
	rep.Output(pb.OutputStream_OUTPUT_STREAM_STDOUT, []byte("hello\n"))
	<-ctx.Done()
	return step.Outcome{Failure: &pb.JobFailure{Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: context.Cause(ctx).Error()}}
}

// startWorker runs a worker named w1 against a fake controller in
// memory until the test ends.
// runningWorker is a worker under test; stopped closes when Run returns.
type runningWorker struct {
	*Worker
	stopped <-chan struct{}
}

func startWorker(t *testing.T, clk clock.Clock, runner Runner) (*fakeController, runningWorker) {
	t.Helper()
	ctl := &fakeController{sessions: make(chan *controllerSession, 1)}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pb.RegisterWorkerServiceServer(srv, ctl)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///controller", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Name: "w1", Slots: 1, Arch: "x86_64", PublicKey: pub, Conn: conn, Runner: runner, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close()
		srv.Stop()
	})
	return ctl, runningWorker{w, done}
}

func TestReconnectsBackOffInVirtualTimeAndStartAfreshAfterALongSession(t *testing.T) {
	clk := recordingClock{Fake: clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), waits: make(chan time.Duration, 16)}
	ctl, _ := startWorker(t, clk, blockingRunner{})
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		ctl.next(t).end <- errors.New("the controller is restarting")
		if got := clk.nextWait(t); got != want {
			t.Fatalf("the worker waits %v to reconnect; want %v", got, want)
		}
		clk.Advance(want)
	}
	s := ctl.next(t)
	clk.Advance(2 * time.Minute)
	s.end <- errors.New("the controller is restarting")
	if got := clk.nextWait(t); got != time.Second {
		t.Errorf("after a session of two minutes the worker waits %v to reconnect; want a fresh start at 1s", got)
	}
}

func TestTheWorkerReportsEveryTenSecondsOfVirtualTimeByDefault(t *testing.T) {
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ctl, _ := startWorker(t, clk, blockingRunner{})
	s := ctl.next(t)
	s.until(t, "its first report", func(msg *pb.WorkRequest) bool { return msg.GetState() != nil })
	clk.BlockUntil(1) // the report ticker
	clk.Advance(10 * time.Second)
	s.until(t, "a report when one was due", func(msg *pb.WorkRequest) bool { return msg.GetState() != nil })
}

func TestAJobRunsThroughTheRunnerAndTheControllersCancelEndsIt(t *testing.T) {
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ctl, _ := startWorker(t, clk, blockingRunner{})
	s := ctl.next(t)
	if err := s.stream.Send(&pb.WorkResponse{Start: []*pb.Job{{JobId: "j1", Name: "hello"}}}); err != nil {
		t.Fatal(err)
	}
	var sawOutput, sawRunning bool
	s.until(t, "the job's output and phase", func(msg *pb.WorkRequest) bool {
		if o := msg.GetOutput(); o != nil && o.JobId == "j1" && bytes.Equal(o.Data, []byte("hello\n")) {
			sawOutput = true
		}
		if j := jobIn(msg, "j1"); j != nil && j.Phase == pb.JobPhase_JOB_PHASE_RUNNING {
			sawRunning = true
		}
		return sawOutput && sawRunning
	})
	if err := s.stream.Send(&pb.WorkResponse{CancelJobIds: []string{"j1"}}); err != nil {
		t.Fatal(err)
	}
	s.until(t, "the cancelled job's failure", func(msg *pb.WorkRequest) bool {
		j := jobIn(msg, "j1")
		return j != nil && j.Phase == pb.JobPhase_JOB_PHASE_FAILED && j.Failure.GetReason() == "cancelled"
	})
	if err := s.stream.Send(&pb.WorkResponse{AcknowledgedJobIds: []string{"j1"}}); err != nil {
		t.Fatal(err)
	}
	// The worker forgets it and leaves it out of its next periodic report
	// (which one depends on when the acknowledgement is read).
	for forgotten, reports := false, 0; !forgotten; reports++ {
		if reports == 100 {
			t.Fatal("the acknowledged job is still reported after 100 reports")
		}
		clk.Advance(10 * time.Second)
		s.until(t, "a periodic report", func(msg *pb.WorkRequest) bool {
			forgotten = msg.GetState() != nil && jobIn(msg, "j1") == nil
			return msg.GetState() != nil
		})
	}
}

func TestADrainingWorkerSaysSoAndIsDrainedOnceItsJobsAreReported(t *testing.T) {
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ctl, w := startWorker(t, clk, blockingRunner{})
	s := ctl.next(t)
	if err := s.stream.Send(&pb.WorkResponse{Start: []*pb.Job{{JobId: "j1", Name: "hello"}}}); err != nil {
		t.Fatal(err)
	}
	s.until(t, "the job running", func(msg *pb.WorkRequest) bool {
		j := jobIn(msg, "j1")
		return j != nil && j.Phase == pb.JobPhase_JOB_PHASE_RUNNING
	})
	w.Drain()
	s.until(t, "a report saying it drains", func(msg *pb.WorkRequest) bool { return msg.GetState().GetDraining() })
	select {
	case <-w.Drained():
		t.Fatal("drained while a job still runs")
	default:
	}
	// The job ends (here the controller cancels it) and is reported and
	// acknowledged: only then is the worker drained.
	s.stream.Send(&pb.WorkResponse{CancelJobIds: []string{"j1"}})
	s.until(t, "the job's end", func(msg *pb.WorkRequest) bool {
		j := jobIn(msg, "j1")
		return j != nil && j.Phase == pb.JobPhase_JOB_PHASE_FAILED
	})
	select {
	case <-w.Drained():
		t.Fatal("drained before the controller acknowledged the job's end")
	default:
	}
	s.stream.Send(&pb.WorkResponse{AcknowledgedJobIds: []string{"j1"}})
	select {
	case <-w.Drained():
	case <-time.After(hangBound):
		t.Fatal("never drained after its last job was acknowledged")
	}
}

func TestAWorkerToldToDrainStopsOnceItsJobsAreReported(t *testing.T) {
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ctl, w := startWorker(t, clk, blockingRunner{})
	s := ctl.next(t)
	s.stream.Send(&pb.WorkResponse{Start: []*pb.Job{{JobId: "j1", Name: "hello"}}})
	s.until(t, "the job running", func(msg *pb.WorkRequest) bool {
		j := jobIn(msg, "j1")
		return j != nil && j.Phase == pb.JobPhase_JOB_PHASE_RUNNING
	})
	s.stream.Send(&pb.WorkResponse{Drain: true})
	s.until(t, "a report saying it drains", func(msg *pb.WorkRequest) bool { return msg.GetState().GetDraining() })
	s.stream.Send(&pb.WorkResponse{CancelJobIds: []string{"j1"}})
	s.until(t, "the job's end", func(msg *pb.WorkRequest) bool {
		j := jobIn(msg, "j1")
		return j != nil && j.Phase == pb.JobPhase_JOB_PHASE_FAILED
	})
	s.stream.Send(&pb.WorkResponse{AcknowledgedJobIds: []string{"j1"}})
	select {
	case <-w.stopped:
	case <-time.After(hangBound):
		t.Fatal("the drained worker did not stop")
	}
}
