package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/clock"
	"distbuild/internal/observability"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/step"
)

// Config describes a worker.
type Config struct {
	Name  string
	Slots int
	Arch  string
	Tags  map[string]string
	// PublicKey is the worker's manifest-signing key, sent when it
	// registers so the controller can tell its manifests apart.
	PublicKey ed25519.PublicKey
	// Conn is the connection to the controller.
	Conn grpc.ClientConnInterface
	// Runner runs the jobs: a *step.Runner. The session only needs it to
	// take a job and give back its outcome, so its tests can use a fake.
	Runner Runner
	// Clock times the reports and the reconnect backoff; nil means the
	// system clock. Tests pass a fake, so they run in virtual time.
	Clock clock.Clock
	// Metrics receives the session's Prometheus metrics (jobs by phase,
	// phase durations, steps finished); nil keeps them unexported.
	Metrics prometheus.Registerer
	Logger  hclog.Logger
}

// Runner runs one job to its end, telling rep its phases and output.
// Cancelling ctx ends the job with context.Cause(ctx) as its reason.
type Runner interface {
	Run(ctx context.Context, job *pb.Job, rep step.Reporter) step.Outcome
}

// Worker serves one controller.
type Worker struct {
	cfg     Config
	log     hclog.Logger
	metrics *metrics

	mu   sync.Mutex
	jobs map[string]*job
	// outbox is the current session's channel to the controller, nil while
	// disconnected; sessionDone closes when that session ends.
	outbox      chan *pb.WorkRequest
	sessionDone chan struct{}
	// changed wakes the session to send a fresh snapshot.
	changed chan struct{}
	// instance is this process's instance id, sent with every
	// registration.
	instance string
	// draining is set by Drain; drained closes once draining and every job
	// is finished and acknowledged.
	draining bool
	drained  chan struct{}
}

// New checks the configuration.
func New(cfg Config) (*Worker, error) {
	if cfg.Name == "" || cfg.Slots < 1 || cfg.Arch == "" || cfg.Conn == nil || cfg.Runner == nil || len(cfg.PublicKey) != ed25519.PublicKeySize {
		return nil, errors.New("worker: name, slots, arch, controller connection, runner and public key are all required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, jobs: map[string]*job{}, changed: make(chan struct{}, 1),
		instance: randomID(), drained: make(chan struct{})}
	w.metrics = newMetrics(observability.Registerer(cfg.Metrics), w)
	return w, nil
}

// Drain stops the worker taking jobs: it tells the controller, which gives
// it no more, and the jobs it holds run to their end. Drained then says
// when every one of them is finished and acknowledged, so a worker being
// shut down for maintenance wastes no work.
func (w *Worker) Drain() {
	w.mu.Lock()
	if !w.draining {
		w.draining = true
		w.log.Info("draining: finishing the jobs held, taking no new ones", "jobs", len(w.jobs))
	}
	w.checkDrainedLocked()
	w.mu.Unlock()
	w.reportChanged()
}

// Drained closes once Drain was called and no job is left.
func (w *Worker) Drained() <-chan struct{} { return w.drained }

// checkDrainedLocked closes drained when draining has finished. Called
// with w.mu held.
func (w *Worker) checkDrainedLocked() {
	if w.draining && len(w.jobs) == 0 {
		select {
		case <-w.drained:
		default:
			close(w.drained)
		}
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// A lost connection is tried again after minBackoff, doubling up to
// maxBackoff while attempts keep failing, so a controller that is down is
// not hammered by every worker at once, yet one back from a restart sees
// its workers within seconds. A session that lasted a minute starts the
// backoff afresh.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// Run serves the controller until ctx ends or the worker has drained,
// reconnecting with backoff whenever the connection drops. Running jobs
// carry on while disconnected.
func (w *Worker) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-w.drained:
			w.log.Info("drained: every job finished and reported; stopping")
			stop()
		case <-ctx.Done():
		}
	}()
	client := pb.NewWorkerServiceClient(w.cfg.Conn)
	clk := w.cfg.Clock
	backoff := minBackoff
	for {
		start := clk.Now()
		err := w.session(ctx, client)
		if ctx.Err() != nil {
			w.cancelAll()
			return nil
		}
		if status.Code(err) == codes.AlreadyExists {
			// Another machine has this name: retrying would only knock
			// one of the two off, again and again.
			w.cancelAll()
			return err
		}
		if clk.Now().Sub(start) > time.Minute {
			backoff = minBackoff
		}
		w.log.Warn("lost the controller; reconnecting", "error", err, "in", backoff)
		wait := make(chan struct{})
		timer := clk.AfterFunc(backoff, func() { close(wait) })
		select {
		case <-wait:
		case <-ctx.Done():
			timer.Stop()
			w.cancelAll()
			return nil
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session runs one Work stream until it fails.
func (w *Worker) session(ctx context.Context, client pb.WorkerServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Work(ctx)
	if err != nil {
		return err
	}
	reg := &pb.WorkerRegistration{Name: w.cfg.Name, Slots: int32(w.cfg.Slots), Arch: w.cfg.Arch, Tags: w.cfg.Tags,
		PublicKey: w.cfg.PublicKey, InstanceId: w.instance}
	if err := stream.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: reg}}); err != nil {
		return err
	}
	outbox := make(chan *pb.WorkRequest, 64)
	done := make(chan struct{})
	w.mu.Lock()
	w.outbox, w.sessionDone = outbox, done
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.outbox, w.sessionDone = nil, nil
		w.mu.Unlock()
		close(done)
	}()
	w.log.Info("connected to the controller", "name", w.cfg.Name, "slots", w.cfg.Slots, "arch", w.cfg.Arch)

	sendErr := make(chan error, 1)
	reportEvery := make(chan time.Duration, 1)
	go func() { sendErr <- w.sender(ctx, stream, outbox, reportEvery) }()
	w.reportChanged()
	for {
		resp, err := stream.Recv()
		if err != nil {
			select {
			case serr := <-sendErr:
				if serr != nil {
					return serr
				}
			default:
			}
			return err
		}
		if d := resp.GetReportDeadline(); d != nil {
			select {
			case reportEvery <- d.AsTime().Sub(w.cfg.Clock.Now()) / 3:
			default:
			}
		}
		for _, id := range resp.CancelJobIds {
			w.cancelJob(id)
		}
		for _, id := range resp.AcknowledgedJobIds {
			w.forget(id)
		}
		if resp.Drain {
			w.Drain()
		}
		for _, j := range resp.Start {
			w.startJob(ctx, j)
		}
	}
}

// sender is the only goroutine that writes to the stream: queued messages
// in order, and a snapshot whenever jobs change or a report is due.
func (w *Worker) sender(ctx context.Context, stream pb.WorkerService_WorkClient, outbox chan *pb.WorkRequest, reportEvery chan time.Duration) error {
	interval := 10 * time.Second
	ticker := w.cfg.Clock.NewTicker(interval)
	defer func() { ticker.Stop() }()
	for {
		var msg *pb.WorkRequest
		select {
		case <-ctx.Done():
			return nil
		case msg = <-outbox:
		case <-w.changed:
			msg = w.snapshot()
		case <-ticker.C():
			msg = w.snapshot()
		case d := <-reportEvery:
			if d > 0 && d != interval {
				interval = d
				ticker.Stop()
				ticker = w.cfg.Clock.NewTicker(interval)
			}
			continue
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}

// reportChanged asks for a snapshot to be sent soon.
func (w *Worker) reportChanged() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// emit queues a message for the controller, waiting while the queue is
// full; it drops the message when disconnected (the log file keeps output).
func (w *Worker) emit(ctx context.Context, msg *pb.WorkRequest) {
	w.mu.Lock()
	outbox, done := w.outbox, w.sessionDone
	w.mu.Unlock()
	if outbox == nil {
		return
	}
	select {
	case outbox <- msg:
	case <-done:
	case <-ctx.Done():
	}
}
