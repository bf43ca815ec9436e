package step

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"distbuild/internal/bytesize"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/splitrule"
	"distbuild/worker/sandbox"
)

// buildChunk fetches, stages, builds and packs one chunk.
func (r *Runner) buildChunk(ctx context.Context, t *task, c *pb.ChunkJob) ([]*pb.ManifestFile, error) {
	dir, out := t.dir, t.out
	rules := make([]splitrule.Rule, 0, len(c.SplitRules))
	for _, sr := range c.SplitRules {
		rule, err := splitrule.New(sr.Artifact, sr.Include)
		if err != nil {
			return nil, fmt.Errorf("split rule %s: %w", sr.Artifact, err)
		}
		rules = append(rules, rule)
	}

	build, staging, destdir := filepath.Join(dir, "build"), filepath.Join(dir, "staging"), filepath.Join(dir, "install")
	t.prof.phase("fetch")
	sourceDate, err := r.checkout(ctx, c, build)
	if err != nil {
		return nil, err
	}
	t.rec.sourceDate = sourceDate
	out.note("# source %s at %s", c.RepoUrl, c.Commit)

	t.rep.Phase(pb.JobPhase_JOB_PHASE_STAGING)
	t.prof.phase("stage")
	for _, d := range []string{staging, destdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	stager, readOnly := r.chunkStager()
	if err := r.stage(ctx, t, stager, staging); err != nil {
		return nil, err
	}
	if readOnly {
		undo, err := mountReadOnly(staging)
		if err != nil {
			return nil, err
		}
		t.onEnd(func() { r.undo(undo) })
	}

	t.rep.Phase(pb.JobPhase_JOB_PHASE_RUNNING)
	spec := sandbox.Spec{
		Mode:      r.cfg.Sandbox,
		BuildMode: c.BuildMode,
		Staging:   staging,
		BuildDir:  build,
		DestDir:   destdir,
		Stdout:    out.stream(pb.OutputStream_OUTPUT_STREAM_STDOUT),
		Stderr:    out.stream(pb.OutputStream_OUTPUT_STREAM_STDERR),
		// A command's whole process group is killed when it stalls or
		// the job's context ends (cancel, step timeout).
		NoOutputTimeout: r.cfg.StallTimeout,
	}
	spec.Env = r.buildEnv(t.job, c, spec, sourceDate)
	for _, phase := range c.Phases {
		for _, cmd := range phase.Commands {
			t.prof.phase(phase.Name)
			out.note("# %s: %s", phase.Name, cmd)
			spec.Command = cmd
			if err := r.runCommand(ctx, t, spec, phase.Name); err != nil {
				return nil, err
			}
		}
	}

	t.rep.Phase(pb.JobPhase_JOB_PHASE_UPLOADING)
	t.prof.phase("pack")
	if err := makeDevices(destdir, c.Devices); err != nil {
		return nil, err
	}
	files, err := r.packAndUpload(ctx, t, destdir, filepath.Join(dir, "artifacts"), func(p string) (string, bool) {
		return splitrule.Match(rules, p)
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		out.note("# the chunk installed nothing")
	}
	return files, nil
}

// runCommand runs one command of a build phase (or "system-integration")
// and turns its failure into the error that says what to do about it: a
// stall is a setup failure and retried elsewhere, a non-zero exit a build
// failure unless the worker's disk is (nearly) full, when the command most
// likely failed for want of space and another worker may well succeed.
// What the command's process tree uses goes into the step's profile.
func (r *Runner) runCommand(ctx context.Context, t *task, spec sandbox.Spec, phase string) error {
	out := t.out
	stop := func() {}
	spec.Started = func(pid int) { stop = t.prof.watchTree(pid) }
	t.rec.env = spec.Env
	res, err := sandbox.Run(ctx, spec)
	stop()
	t.prof.used(res.Usage)
	what := fmt.Sprintf("%s command %q", phase, firstLine(spec.Command))
	switch {
	case errors.Is(err, sandbox.ErrStalled):
		return &stallError{what: what, lacking: "output", limit: r.cfg.StallTimeout}
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case out.err() != nil:
		return out.err()
	case res.ExitCode != 0:
		if free, low := r.lowOnDisk(); low {
			return fmt.Errorf("%s exited with status %d with only %s free in %s: %w", what, res.ExitCode, free, r.cfg.WorkDir, syscall.ENOSPC)
		}
		return &commandError{phase: phase, command: spec.Command, exitCode: res.ExitCode}
	}
	return nil
}

// lowOnDisk reports whether the work directory's file system has less
// than Config.MinFreeBytes available, and how much it has.
func (r *Runner) lowOnDisk() (bytesize.Size, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.cfg.WorkDir, &st); err != nil {
		return 0, false
	}
	free := bytesize.Size(int64(st.Bavail) * st.Bsize)
	return free, int64(free) < r.cfg.MinFreeBytes
}

// buildEnv is the environment of a chunk's commands: a clean base (so the
// worker's own environment cannot leak into artifacts) plus the variables
// the definitions format promises, and SOURCE_DATE_EPOCH, the source
// commit's date, which reproducible tools stamp instead of the time they
// run (https://reproducible-builds.org/specs/source-date-epoch/).
func (r *Runner) buildEnv(job *pb.Job, c *pb.ChunkJob, spec sandbox.Spec, sourceDate time.Time) []string {
	_, destInside := spec.Paths()
	jobs := int(c.MaxJobs)
	if jobs <= 0 {
		jobs = r.cfg.MaxJobs
	}
	env := []string{
		"PATH=/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME=/tmp",
		"LC_ALL=C",
		"TERM=dumb",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(sourceDate.Unix(), 10),
		"PREFIX=" + c.Prefix,
		"DESTDIR=" + destInside,
		"MORPH_ARCH=" + job.Arch,
		"MAKEFLAGS=-j" + strconv.Itoa(jobs),
	}
	if spec.HostTools() {
		env[0] = "PATH=" + os.Getenv("PATH")
		env = sandbox.StagingEnv(spec.Staging, env)
	}
	return env
}
