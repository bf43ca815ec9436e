package step

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/clock"
	"distbuild/digest"
	"distbuild/gitmirror"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/cache"
	"distbuild/worker/sandbox"
)

// Config describes how a worker runs its steps.
type Config struct {
	// Worker is the worker's name, written into manifests, their
	// signatures and each log's first line.
	Worker string
	// SigningKey signs every manifest the worker stores, so the cache (and
	// users) can tell it came from this registered worker.
	SigningKey ed25519.PrivateKey
	// WorkDir holds build directories (jobs/) and git mirrors (git/).
	WorkDir string
	Sandbox sandbox.Mode
	// Cache is the artifact cache: where inputs come from and results go.
	// The worker gives a cache.Local wrapping the trove's client, so
	// staged artifacts are downloaded once.
	Cache cache.Cache
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
	// Clock times the transfer watchdogs and the manifest's start and
	// finish; nil means the system clock. Tests pass a fake, so stall
	// detection is tested in virtual time.
	Clock  clock.Clock
	Logger hclog.Logger
}

// Reporter is told what a running step is doing, so that the worker's
// session can relay it to the controller (and the controller to whoever
// watches the build).
type Reporter interface {
	// Phase says the step has moved on to phase.
	Phase(phase pb.JobPhase)
	// Output is the next piece of the step's output: its commands' and
	// the worker's own notes, in order. data is valid only during the
	// call.
	Output(stream pb.OutputStream, data []byte)
	// Profile is where the step's time went, told once as it ends, before
	// Run returns.
	Profile(profile *pb.StepProfile)
}

// Runner runs steps; one Runner serves all of a worker's slots at once.
type Runner struct {
	cfg    Config
	log    hclog.Logger
	git    *gitmirror.Cache
	gitDir string // where git keeps the mirrors, watched for fetch progress
	// link stages by linking trees the cache keeps unpacked; nil when the
	// cache keeps none (it is no cache.Local), and every artifact is
	// unpacked afresh.
	link stager
	// mounts and overlays say whether the runner may bind-mount a staging
	// area read-only, and mount overlays, to protect linked trees from
	// builds (see protect.go).
	mounts, overlays bool
}

// New checks the configuration and prepares the work directory.
func New(cfg Config) (*Runner, error) {
	if cfg.Worker == "" || cfg.Cache == nil || cfg.WorkDir == "" || len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("step: worker name, cache, work directory and signing key are all required")
	}
	if cfg.StallTimeout < 0 || cfg.TransferStallTimeout < 0 || cfg.LogLimit < 0 || cfg.MinFreeBytes < 0 {
		return nil, errors.New("step: stall timeouts and sizes cannot be negative")
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if err := os.MkdirAll(filepath.Join(cfg.WorkDir, "jobs"), 0o755); err != nil {
		return nil, fmt.Errorf("step: preparing %s: %w", cfg.WorkDir, err)
	}
	gitDir := filepath.Join(cfg.WorkDir, "git")
	mirrors, err := gitmirror.New(gitDir, cfg.Logger.Named("git"))
	if err != nil {
		return nil, fmt.Errorf("step: %w", err)
	}
	r := &Runner{cfg: cfg, log: cfg.Logger, git: mirrors, gitDir: gitDir}
	if trees, ok := cfg.Cache.(treeCache); ok {
		r.link = linker{r: r, trees: trees}
	}
	jobs := filepath.Join(cfg.WorkDir, "jobs")
	r.mounts, r.overlays = mountable(jobs)
	if r.mounts {
		// Mounts a worker that died left on its job directories.
		if err := unmountUnder(jobs); err != nil {
			cfg.Logger.Warn("could not unmount what an earlier worker left mounted", "dir", jobs, "error", err)
		}
	}
	return r, nil
}

// undo undoes a mount made for a job as it ends; failing to is worth a
// warning, not the job.
func (r *Runner) undo(unmount func() error) {
	if err := unmount(); err != nil {
		r.log.Warn("could not undo a job's mount", "error", err)
	}
}

var kindNames = map[pb.StepKind]string{
	pb.StepKind_STEP_KIND_CHUNK:   "chunk",
	pb.StepKind_STEP_KIND_STRATUM: "stratum",
	pb.StepKind_STEP_KIND_SYSTEM:  "system",
}

// storedLog is a finished log file: its first size bytes are the log.
type storedLog struct {
	path string
	size int64
}

// Outcome is how a job ended: exactly one of its fields is set.
type Outcome struct {
	// Manifest is a built step's signed manifest, already in the cache.
	Manifest *pb.Manifest
	// Check is what a check job's comparison found.
	Check *pb.CheckResult
	// Failure says why the job failed.
	Failure *pb.JobFailure
}

// Run carries out one job and returns its signed manifest, already stored
// in the cache, or for a check job (Job.check) what comparing its rebuild
// with the cached artifacts found, or how it failed. The job ends early
// when ctx does, and at the job's own timeout; the failure then gives
// context.Cause(ctx) as its reason, so a caller cancelling a job says why
// with its cause.
func (r *Runner) Run(ctx context.Context, job *pb.Job, rep Reporter) Outcome {
	if t := job.GetTimeout().AsDuration(); t > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, t, &stepTimeoutError{limit: t})
		defer stop()
	}
	dir := filepath.Join(r.cfg.WorkDir, "jobs", job.JobId)
	if !r.cfg.KeepBuildDirs {
		defer os.RemoveAll(dir)
	}
	started := r.cfg.Clock.Now()
	prof := newProfiler(r.cfg.Clock, started)
	defer func() { rep.Profile(prof.profile()) }()
	rec := &record{}
	files, check, log, err := r.execute(ctx, job, dir, rep, prof, rec)
	// The log is uploaded whatever happened, after a cancel or timeout
	// too: failed steps' logs matter most.
	var logDigest *pb.Digest
	if log.path != "" {
		prof.phase("upload")
		d, uerr := r.uploadLog(context.WithoutCancel(ctx), log)
		if uerr == nil {
			logDigest = d.Proto()
		} else if err == nil {
			err = uerr
		} else {
			r.log.Warn("could not upload a job's log", "job", job.JobId, "error", uerr)
		}
	}
	if err == nil && check != nil {
		check.Log = logDigest
		r.log.Info("check done", "job", job.JobId, "step", job.Name, "outcome", check.Outcome.String(), "took", r.cfg.Clock.Now().Sub(started).Round(time.Millisecond))
		return Outcome{Check: check}
	}
	if err == nil {
		finished := r.cfg.Clock.Now()
		var prov *pb.ManifestFile
		if prov, err = r.uploadProvenance(ctx, r.statement(job, rec, files, logDigest, started, finished)); err == nil {
			m := &pb.Manifest{
				CacheKey: job.CacheKey,
				StepName: job.Name,
				Kind:     job.Kind,
				Files:    append(files, &pb.ManifestFile{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: logDigest}, prov),
				Worker:   r.cfg.Worker,
				Started:  timestamppb.New(started),
				Finished: timestamppb.New(finished),
				Grant:    job.Grant,
			}
			if !rec.sourceDate.IsZero() {
				m.SourceDate = timestamppb.New(rec.sourceDate)
			}
			if err = r.putManifest(ctx, m); err == nil {
				r.log.Info("job done", "job", job.JobId, "step", job.Name, "took", r.cfg.Clock.Now().Sub(started).Round(time.Millisecond))
				return Outcome{Manifest: m}
			}
		}
	}
	f := failureOf(err, context.Cause(ctx))
	f.Log = logDigest
	r.log.Warn("job failed", "job", job.JobId, "step", job.Name, "kind", f.Kind.String(), "reason", f.Reason)
	return Outcome{Failure: f}
}

// execute builds the job's artifacts into the cache and returns their
// files, for a check job what comparing them with the cached ones found,
// and the job's log.
func (r *Runner) execute(ctx context.Context, job *pb.Job, dir string, rep Reporter, prof *profiler, rec *record) ([]*pb.ManifestFile, *pb.CheckResult, storedLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, storedLog{}, err
	}
	log := storedLog{path: filepath.Join(dir, "log")}
	out, err := newOutput(log.path, r.cfg.LogLimit, rep, r.cfg.Clock, prof.start)
	if err != nil {
		return nil, nil, storedLog{}, err
	}
	what := kindNames[job.Kind]
	if job.Check != nil {
		what = "check of " + what
	}
	out.note("# distbuild: %s %s on %s", what, job.Name, r.cfg.Worker)
	var files []*pb.ManifestFile
	var check *pb.CheckResult
	if err = out.err(); err == nil {
		t := &task{job: job, dir: dir, out: out, rep: rep, prof: prof, rec: rec}
		files, err = r.build(ctx, t)
		if err == nil && job.Check != nil {
			check, err = r.compare(ctx, t, files)
		}
		t.end()
	}
	if lerr := out.err(); lerr != nil && (err == nil || errors.As(err, new(*commandError))) {
		// A command whose output could not be kept may have died of it.
		err = lerr
	}
	if err != nil {
		msg := err.Error()
		if cause := context.Cause(ctx); cause != nil && !strings.Contains(msg, cause.Error()) {
			msg += " (" + cause.Error() + ")"
		}
		out.note("# distbuild: FAILED: %s", msg)
	}
	size, cerr := out.close()
	log.size = size
	if err == nil {
		err = cerr
	}
	return files, check, log, err
}

// task is one job being built: what every part of the build needs.
type task struct {
	job *pb.Job
	dir string // the job's own directory, removed when it ends
	out *output
	rep Reporter
	// prof records the step's phases and what its commands use.
	prof *profiler
	// rec records what the step's provenance must say.
	rec *record
	// ends undo, last first, what the job holds until it ends: mounts
	// on its directory, trees kept for it.
	ends []func()
}

// onEnd has f run as the job's build ends.
func (t *task) onEnd(f func()) { t.ends = append(t.ends, f) }

// end runs what onEnd was given, last first.
func (t *task) end() {
	for i := len(t.ends) - 1; i >= 0; i-- {
		t.ends[i]()
	}
	t.ends = nil
}

// build does the work of the job's kind.
func (r *Runner) build(ctx context.Context, t *task) ([]*pb.ManifestFile, error) {
	switch spec := t.job.Spec.(type) {
	case *pb.Job_Chunk:
		return r.buildChunk(ctx, t, spec.Chunk)
	case *pb.Job_Stratum:
		t.rep.Phase(pb.JobPhase_JOB_PHASE_STAGING)
		t.prof.phase("stage")
		return r.recordStratum(ctx, t, spec.Stratum)
	case *pb.Job_System:
		return r.assembleSystem(ctx, t, spec.System)
	}
	return nil, fmt.Errorf("job %s has no spec this worker understands", t.job.JobId)
}

// uploadLog stores a finished log in the cache.
func (r *Runner) uploadLog(ctx context.Context, log storedLog) (digest.Digest, error) {
	d, err := hashFile(log.path, log.size)
	if err == nil {
		err = r.uploadFile(ctx, "uploading the build log", log.path, d)
	}
	return d, doing("uploading the build log", err)
}

// upload stores a packed artifact in the cache and describes it for the
// manifest.
func (r *Runner) upload(ctx context.Context, path, name, sha256 string, size int64) (*pb.ManifestFile, error) {
	what := "uploading " + name
	d, err := digest.Parse(sha256, size)
	if err == nil {
		err = r.uploadFile(ctx, what, path, d)
	}
	if err != nil {
		return nil, doing(what, err)
	}
	return &pb.ManifestFile{Name: name, Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}, nil
}
