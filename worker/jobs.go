package worker

import (
	"context"

	pb "distbuild/proto/distbuild/v1"
)

// job is one assignment and what has become of it.
type job struct {
	spec   *pb.Job
	cancel context.CancelFunc

	phase    pb.JobPhase
	manifest *pb.Manifest
	failure  *pb.JobFailure
}

func (w *Worker) snapshot() *pb.WorkRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := &pb.WorkerState{}
	for id, j := range w.jobs {
		st.Jobs = append(st.Jobs, &pb.JobStatus{JobId: id, Phase: j.phase, Manifest: j.manifest, Failure: j.failure})
	}
	return &pb.WorkRequest{Message: &pb.WorkRequest_State{State: st}}
}

// startJob runs a job in the background; a job id seen before is ignored,
// since the controller may repeat itself after a reconnect.
func (w *Worker) startJob(sessionCtx context.Context, spec *pb.Job) {
	w.mu.Lock()
	if _, dup := w.jobs[spec.JobId]; dup {
		w.mu.Unlock()
		return
	}
	// Jobs outlive sessions: they are cancelled by the controller or when
	// the worker stops, not when a connection drops.
	ctx, cancel := context.WithCancel(context.WithoutCancel(sessionCtx))
	if t := spec.GetTimeout().AsDuration(); t > 0 {
		ctx, cancel = context.WithTimeout(context.WithoutCancel(sessionCtx), t)
	}
	j := &job{spec: spec, cancel: cancel, phase: pb.JobPhase_JOB_PHASE_FETCHING_SOURCES}
	w.jobs[spec.JobId] = j
	w.mu.Unlock()
	w.reportChanged()
	w.log.Info("job started", "job", spec.JobId, "step", spec.Name, "kind", spec.Kind.String())
	go w.run(ctx, j)
}

func (w *Worker) setPhase(j *job, phase pb.JobPhase) {
	w.mu.Lock()
	j.phase = phase
	w.mu.Unlock()
	w.reportChanged()
}

func (w *Worker) finish(j *job, m *pb.Manifest, f *pb.JobFailure) {
	w.mu.Lock()
	if f != nil {
		j.phase, j.failure = pb.JobPhase_JOB_PHASE_FAILED, f
	} else {
		j.phase, j.manifest = pb.JobPhase_JOB_PHASE_DONE, m
	}
	w.mu.Unlock()
	j.cancel()
	w.reportChanged()
}

func (w *Worker) cancelJob(id string) {
	w.mu.Lock()
	j := w.jobs[id]
	w.mu.Unlock()
	if j != nil {
		w.log.Info("job cancelled by the controller", "job", id, "step", j.spec.Name)
		j.cancel()
	}
}

// forget drops a finished job the controller has recorded.
func (w *Worker) forget(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if j := w.jobs[id]; j != nil && (j.phase == pb.JobPhase_JOB_PHASE_DONE || j.phase == pb.JobPhase_JOB_PHASE_FAILED) {
		delete(w.jobs, id)
	}
}

func (w *Worker) cancelAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range w.jobs {
		j.cancel()
	}
}
