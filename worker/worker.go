package worker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"distbuild/artifactcache"
	"distbuild/gitmirror"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

// Config describes a worker.
type Config struct {
	// SigningKey signs every manifest the worker stores, so the cache (and
	// users) can tell it came from this registered worker.
	SigningKey ed25519.PrivateKey
	Name       string
	Slots      int
	Arch       string
	Tags       map[string]string
	// Conn is the connection to the controller.
	Conn grpc.ClientConnInterface
	// WorkDir holds build directories (jobs/), git mirrors (git/) and the
	// local blob cache (blobs/).
	WorkDir string
	Sandbox sandbox.Mode
	Cache   *artifactcache.Client
	// MaxJobs is the make parallelism for chunks that do not set max-jobs.
	MaxJobs int
	// AllowSetuid lets staged and system artifacts contain setuid and setgid
	// programs (real systems need some, such as su); off by default, so an
	// artifact cannot plant one on a worker that did not ask for them.
	AllowSetuid bool
	// MinFreeBytes is how little free space in WorkDir's file system makes
	// a failed build command count as a full disk: a setup failure,
	// retried on another worker, rather than the build's fault. Zero never
	// does.
	MinFreeBytes int64
	// BlobCacheBytes bounds the local blob cache (blobs/): beyond it the
	// least recently used artifacts are deleted, to be downloaded again
	// when next needed. Zero means no bound.
	BlobCacheBytes int64
	// KeepBuildDirs leaves each job's directory behind, for debugging.
	KeepBuildDirs bool
	// StallTimeout stops a build or system-integration command that writes
	// no output for this long, as a setup failure the controller retries
	// elsewhere: a hung test suite frees its slot long before the step's
	// timeout, which must allow for the slowest healthy build. Zero never
	// stops a quiet command.
	StallTimeout time.Duration
	// TransferStallTimeout stops a source fetch or artifact cache transfer
	// that makes no progress for this long (and a cache call unanswered for
	// this long), as a setup failure: a hung server or network would
	// otherwise hold the slot until the step's timeout. Zero never stops
	// one.
	TransferStallTimeout time.Duration
	// LogLimit caps each step's stored log in bytes: a longer log keeps its
	// first and last halves, with a line saying what was cut. Zero keeps
	// everything.
	LogLimit int64
	Logger   hclog.Logger
}

// Worker serves one controller.
type Worker struct {
	cfg    Config
	log    hclog.Logger
	git    *gitmirror.Cache
	gitDir string // where git keeps the mirrors, watched for fetch progress
	blobs  *blobCache

	mu   sync.Mutex
	jobs map[string]*job
	// outbox is the current session's channel to the controller, nil while
	// disconnected; sessionDone closes when that session ends.
	outbox      chan *pb.WorkRequest
	sessionDone chan struct{}
	// changed wakes the session to send a fresh snapshot.
	changed chan struct{}
}

// New checks the configuration and prepares the work directory.
func New(cfg Config) (*Worker, error) {
	if cfg.Name == "" || cfg.Slots < 1 || cfg.Arch == "" || cfg.Conn == nil || cfg.Cache == nil || cfg.WorkDir == "" || len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("worker: name, slots, arch, controller connection, cache, work directory and signing key are all required")
	}
	if cfg.StallTimeout < 0 || cfg.TransferStallTimeout < 0 || cfg.LogLimit < 0 || cfg.BlobCacheBytes < 0 || cfg.MinFreeBytes < 0 {
		return nil, errors.New("worker: stall timeouts and sizes cannot be negative")
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(filepath.Join(cfg.WorkDir, "jobs"), 0o755); err != nil {
		return nil, fmt.Errorf("worker: preparing %s: %w", cfg.WorkDir, err)
	}
	blobs, err := openBlobCache(filepath.Join(cfg.WorkDir, "blobs"), cfg.BlobCacheBytes, cfg.Logger.Named("blobs"))
	if err != nil {
		return nil, fmt.Errorf("worker: preparing %s: %w", cfg.WorkDir, err)
	}
	gitDir := filepath.Join(cfg.WorkDir, "git")
	mirrors, err := gitmirror.New(gitDir, cfg.Logger.Named("git"))
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return &Worker{cfg: cfg, log: cfg.Logger, git: mirrors, gitDir: gitDir, blobs: blobs, jobs: map[string]*job{}, changed: make(chan struct{}, 1)}, nil
}

// Run serves the controller until ctx ends, reconnecting with backoff
// whenever the connection drops. Running jobs carry on while disconnected.
func (w *Worker) Run(ctx context.Context) error {
	client := pb.NewWorkerServiceClient(w.cfg.Conn)
	backoff := time.Second
	for {
		start := time.Now()
		err := w.session(ctx, client)
		if ctx.Err() != nil {
			w.cancelAll()
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		w.log.Warn("lost the controller; reconnecting", "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			w.cancelAll()
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
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
		PublicKey: w.cfg.SigningKey.Public().(ed25519.PublicKey)}
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
			case reportEvery <- time.Until(d.AsTime()) / 3:
			default:
			}
		}
		for _, id := range resp.CancelJobIds {
			w.cancelJob(id)
		}
		for _, id := range resp.AcknowledgedJobIds {
			w.forget(id)
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
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		var msg *pb.WorkRequest
		select {
		case <-ctx.Done():
			return nil
		case msg = <-outbox:
		case <-w.changed:
			msg = w.snapshot()
		case <-ticker.C:
			msg = w.snapshot()
		case d := <-reportEvery:
			if d > 0 && d != interval {
				interval = d
				ticker.Reset(interval)
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
