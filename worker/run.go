package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

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

// run carries out one job and records its outcome.
func (w *Worker) run(ctx context.Context, j *job) {
	spec := j.spec
	dir := filepath.Join(w.cfg.WorkDir, "jobs", spec.JobId)
	if !w.cfg.KeepBuildDirs {
		defer os.RemoveAll(dir)
	}
	started := time.Now()
	files, log, err := w.execute(ctx, j, dir)
	// The log is uploaded whatever happened, after a cancel or timeout
	// too: failed steps' logs matter most.
	var logDigest *pb.Digest
	if log.path != "" {
		d, uerr := w.uploadLog(context.WithoutCancel(ctx), log)
		if uerr == nil {
			logDigest = d.Proto()
		} else if err == nil {
			err = uerr
		} else {
			w.log.Warn("could not upload a job's log", "job", spec.JobId, "error", uerr)
		}
	}
	if err == nil {
		m := &pb.Manifest{
			CacheKey: spec.CacheKey,
			StepName: spec.Name,
			Kind:     spec.Kind,
			Files:    append(files, &pb.ManifestFile{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: logDigest}),
			Worker:   w.cfg.Name,
			Started:  timestamppb.New(started),
			Finished: timestamppb.Now(),
			Grant:    spec.Grant,
		}
		if err = w.putManifest(ctx, m); err == nil {
			w.log.Info("job done", "job", spec.JobId, "step", spec.Name, "took", time.Since(started).Round(time.Millisecond))
			w.finish(j, m, nil)
			return
		}
	}
	f := failureOf(err, context.Cause(ctx))
	f.Log = logDigest
	w.log.Warn("job failed", "job", spec.JobId, "step", spec.Name, "kind", f.Kind.String(), "reason", f.Reason)
	w.finish(j, nil, f)
}

// execute builds the job's artifacts into the cache and returns their files
// and the job's log.
func (w *Worker) execute(ctx context.Context, j *job, dir string) ([]*pb.ManifestFile, storedLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, storedLog{}, err
	}
	log := storedLog{path: filepath.Join(dir, "log")}
	out, err := newOutput(ctx, w, j.spec.JobId, log.path)
	if err != nil {
		return nil, storedLog{}, err
	}
	out.note("# distbuild: %s %s on %s", kindNames[j.spec.Kind], j.spec.Name, w.cfg.Name)
	var files []*pb.ManifestFile
	if err = out.err(); err == nil {
		files, err = w.build(ctx, j, dir, out)
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
	return files, log, err
}

// build does the work of the job's kind.
func (w *Worker) build(ctx context.Context, j *job, dir string, out *output) ([]*pb.ManifestFile, error) {
	switch spec := j.spec.Spec.(type) {
	case *pb.Job_Chunk:
		return w.buildChunk(ctx, j, spec.Chunk, dir, out)
	case *pb.Job_Stratum:
		w.setPhase(j, pb.JobPhase_JOB_PHASE_STAGING)
		return w.recordStratum(ctx, spec.Stratum, out)
	case *pb.Job_System:
		return w.assembleSystem(ctx, j, spec.System, dir, out)
	}
	return nil, fmt.Errorf("job %s has no spec this worker understands", j.spec.JobId)
}

// uploadLog stores a finished log in the cache.
func (w *Worker) uploadLog(ctx context.Context, log storedLog) (digest.Digest, error) {
	d, err := hashFile(log.path, log.size)
	if err == nil {
		err = w.uploadFile(ctx, "uploading the build log", log.path, d)
	}
	return d, doing("uploading the build log", err)
}

// upload stores a packed artifact in the cache and describes it for the
// manifest.
func (w *Worker) upload(ctx context.Context, path, name, sha256 string, size int64) (*pb.ManifestFile, error) {
	what := "uploading " + name
	d, err := digest.Parse(sha256, size)
	if err == nil {
		err = w.uploadFile(ctx, what, path, d)
	}
	if err != nil {
		return nil, doing(what, err)
	}
	return &pb.ManifestFile{Name: name, Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}, nil
}
