package worker

import (
	"context"
	"errors"
	"time"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/step"
)

// Why a job's context ended, as its cause: the job then fails with this
// cause as its reason, whatever error the interrupted work returned.
var (
	// errCancelled is the controller's cancel. The controller ignores the
	// report, so the reason is short.
	errCancelled = errors.New("cancelled")
	// errStopping is the worker shutting down.
	errStopping = errors.New("cancelled: the worker is stopping")
)

// job is one assignment and what has become of it.
type job struct {
	spec *pb.Job
	// cancel ends the job's context with a cause (errCancelled,
	// errStopping), which becomes the job's failure reason.
	cancel context.CancelCauseFunc

	phase pb.JobPhase
	// phaseSince is when the job entered its phase, for metrics.
	phaseSince time.Time
	manifest   *pb.Manifest
	check      *pb.CheckResult
	failure    *pb.JobFailure
	// profile is where the job's time went, reported with its outcome.
	profile *pb.StepProfile
}

func (w *Worker) snapshot() *pb.WorkRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := &pb.WorkerState{Draining: w.draining}
	for id, j := range w.jobs {
		js := &pb.JobStatus{JobId: id, CacheKey: j.spec.CacheKey, Phase: j.phase, Manifest: j.manifest, Check: j.check, Failure: j.failure, Profile: j.profile}
		if j.spec.Check != nil {
			// A restarted controller must not adopt a check as the
			// build of the step it checks: it runs the check again.
			js.CacheKey = ""
		}
		st.Jobs = append(st.Jobs, js)
	}
	return &pb.WorkRequest{Message: &pb.WorkRequest_State{State: st}}
}

// startJob runs a job in the background; a job id seen before is ignored,
// since the controller may repeat itself after a reconnect.
func (w *Worker) startJob(sessionCtx context.Context, spec *pb.Job) {
	ctx, j := w.newJob(sessionCtx, spec)
	if j == nil {
		return
	}
	w.reportChanged()
	w.log.Info("job started", "job", spec.JobId, "step", spec.Name, "kind", spec.Kind.String())
	go w.run(ctx, j)
}

// newJob records a job and makes its context, or returns a nil job for an
// id already known. Jobs outlive sessions: they end when the controller
// cancels them, when the worker stops, or at the step's timeout (which
// the runner applies), not when a connection drops.
func (w *Worker) newJob(sessionCtx context.Context, spec *pb.Job) (context.Context, *job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.jobs[spec.JobId]; dup {
		return nil, nil
	}
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(sessionCtx))
	j := &job{spec: spec, phase: pb.JobPhase_JOB_PHASE_FETCHING_SOURCES, phaseSince: w.cfg.Clock.Now(), cancel: cancel}
	w.jobs[spec.JobId] = j
	return ctx, j
}

// run has the runner carry out the job and records its outcome.
func (w *Worker) run(ctx context.Context, j *job) {
	w.finish(j, w.cfg.Runner.Run(ctx, j.spec, reporter{w: w, j: j, ctx: ctx}))
}

// reporter relays a running job's phases and output to the controller.
type reporter struct {
	w   *Worker
	j   *job
	ctx context.Context
}

func (r reporter) Phase(phase pb.JobPhase) { r.w.setPhase(r.j, phase) }

// Profile keeps the profile for the reports that carry the job's outcome.
func (r reporter) Profile(p *pb.StepProfile) {
	r.w.mu.Lock()
	r.j.profile = p
	r.w.mu.Unlock()
}

func (r reporter) Output(stream pb.OutputStream, data []byte) {
	r.w.emit(r.ctx, &pb.WorkRequest{Message: &pb.WorkRequest_Output{Output: &pb.JobOutput{
		JobId: r.j.spec.JobId, Stream: stream, Data: append([]byte(nil), data...)}}})
}

func (w *Worker) setPhase(j *job, phase pb.JobPhase) {
	w.mu.Lock()
	if phase != j.phase {
		w.metrics.left(j, w.cfg.Clock.Now())
	}
	j.phase = phase
	w.mu.Unlock()
	w.reportChanged()
}

func (w *Worker) finish(j *job, o step.Outcome) {
	w.mu.Lock()
	w.metrics.left(j, w.cfg.Clock.Now())
	switch {
	case o.Failure != nil:
		j.phase, j.failure = pb.JobPhase_JOB_PHASE_FAILED, o.Failure
		w.metrics.finished.WithLabelValues("failed").Inc()
	case o.Check != nil:
		j.phase, j.check = pb.JobPhase_JOB_PHASE_DONE, o.Check
		w.metrics.finished.WithLabelValues("checked").Inc()
	default:
		j.phase, j.manifest = pb.JobPhase_JOB_PHASE_DONE, o.Manifest
		w.metrics.finished.WithLabelValues("built").Inc()
	}
	w.mu.Unlock()
	j.cancel(nil)
	w.reportChanged()
}

func (w *Worker) cancelJob(id string) {
	w.mu.Lock()
	j := w.jobs[id]
	w.mu.Unlock()
	if j != nil {
		w.log.Info("job cancelled by the controller", "job", id, "step", j.spec.Name)
		j.cancel(errCancelled)
	}
}

// forget drops a finished job the controller has recorded.
func (w *Worker) forget(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if j := w.jobs[id]; j != nil && (j.phase == pb.JobPhase_JOB_PHASE_DONE || j.phase == pb.JobPhase_JOB_PHASE_FAILED) {
		delete(w.jobs, id)
	}
	w.checkDrainedLocked()
}

func (w *Worker) cancelAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range w.jobs {
		j.cancel(errStopping)
	}
}
