package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "distbuild/proto/distbuild/v1"
)

// commandError is a build command that ran and failed: the user's problem,
// never retried.
type commandError struct {
	phase    string
	command  string
	exitCode int
}

func (e *commandError) Error() string {
	return fmt.Sprintf("%s command exited with status %d: %s", e.phase, e.exitCode, firstLine(e.command))
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i] + " ..."
		}
	}
	return s
}

var kindNames = map[pb.StepKind]string{
	pb.StepKind_STEP_KIND_CHUNK:   "chunk",
	pb.StepKind_STEP_KIND_STRATUM: "stratum",
	pb.StepKind_STEP_KIND_SYSTEM:  "system",
}

// run carries out one job and records its outcome.
func (w *Worker) run(ctx context.Context, j *job) {
	spec := j.spec
	dir := filepath.Join(w.cfg.WorkDir, "jobs", spec.JobId)
	if !w.cfg.KeepBuildDirs {
		defer os.RemoveAll(dir)
	}
	started := time.Now()
	files, logFile, err := w.execute(ctx, j, dir)
	// The log is uploaded whatever happened: failed steps' logs matter most.
	var logDigest *pb.Digest
	if logFile != "" {
		if d, uerr := w.cfg.Cache.UploadFile(context.WithoutCancel(ctx), logFile); uerr == nil {
			logDigest = d.Proto()
		} else {
			w.log.Warn("could not upload a job's log", "job", spec.JobId, "error", uerr)
		}
	}
	if err == nil && logDigest == nil {
		err = errors.New("uploading the build log failed")
	}
	if err != nil {
		f := &pb.JobFailure{Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: err.Error(), Log: logDigest}
		var ce *commandError
		if errors.As(err, &ce) {
			f.Kind, f.ExitCode = pb.FailureKind_FAILURE_KIND_BUILD, int32(ce.exitCode)
		}
		w.log.Warn("job failed", "job", spec.JobId, "step", spec.Name, "reason", f.Reason)
		w.finish(j, nil, f)
		return
	}
	m := &pb.Manifest{
		CacheKey: spec.CacheKey,
		StepName: spec.Name,
		Kind:     spec.Kind,
		Files:    append(files, &pb.ManifestFile{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: logDigest}),
		Worker:   w.cfg.Name,
		Started:  timestamppb.New(started),
		Finished: timestamppb.Now(),
	}
	if err := w.cfg.Cache.PutManifest(ctx, m); err != nil {
		w.finish(j, nil, &pb.JobFailure{Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: "storing the manifest: " + err.Error(), Log: logDigest})
		return
	}
	w.log.Info("job done", "job", spec.JobId, "step", spec.Name, "took", time.Since(started).Round(time.Millisecond))
	w.finish(j, m, nil)
}

// execute builds the job's artifacts into the cache and returns their files
// and the path of the log.
func (w *Worker) execute(ctx context.Context, j *job, dir string) ([]*pb.ManifestFile, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(dir, "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close()
	out := &output{w: w, ctx: ctx, id: j.spec.JobId, log: logFile}
	out.note("# distbuild: %s %s on %s", kindNames[j.spec.Kind], j.spec.Name, w.cfg.Name)
	var files []*pb.ManifestFile
	switch spec := j.spec.Spec.(type) {
	case *pb.Job_Chunk:
		files, err = w.buildChunk(ctx, j, spec.Chunk, dir, out)
	case *pb.Job_Stratum:
		w.setPhase(j, pb.JobPhase_JOB_PHASE_STAGING)
		files, err = w.recordStratum(ctx, spec.Stratum, out)
	case *pb.Job_System:
		files, err = w.assembleSystem(ctx, j, spec.System, dir, out)
	default:
		err = fmt.Errorf("job %s has no spec this worker understands", j.spec.JobId)
	}
	if err != nil {
		if ctx.Err() != nil && !errors.As(err, new(*commandError)) {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		out.note("# distbuild: FAILED: %v", err)
	}
	if serr := logFile.Sync(); serr != nil && err == nil {
		err = serr
	}
	return files, logPath, err
}

// upload stores a file in the cache and describes it for the manifest.
func (w *Worker) upload(ctx context.Context, path, name string, role pb.FileRole) (*pb.ManifestFile, error) {
	d, err := w.cfg.Cache.UploadFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("uploading %s: %w", name, err)
	}
	return &pb.ManifestFile{Name: name, Role: role, Digest: d.Proto()}, nil
}
