package step

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/tarball"
	"distbuild/worker/sandbox"
)

// stratumMember is one chunk artifact of a stratum artifact, in the
// stratum's metadata blob. Members point at chunk artifacts by cache key,
// not blob digest, so a chunk rebuilt after an eviction still satisfies it.
type stratumMember struct {
	CacheKey string `json:"cache_key"`
	Artifact string `json:"artifact"`
	Chunk    string `json:"chunk"`
}

// recordStratum writes one metadata blob per stratum artifact listing the
// chunk artifacts it holds. Split artifacts a chunk did not produce (it
// installed nothing matching them) are left out.
func (r *Runner) recordStratum(ctx context.Context, t *task, s *pb.StratumJob) ([]*pb.ManifestFile, error) {
	out := t.out
	manifests := map[string]*pb.Manifest{}
	var files []*pb.ManifestFile
	for _, a := range s.Artifacts {
		members := []stratumMember{}
		for _, m := range a.Members {
			cm, ok := manifests[m.CacheKey]
			if !ok {
				var err error
				if cm, err = r.manifest(ctx, m.CacheKey); err != nil {
					return nil, err
				}
				manifests[m.CacheKey] = cm
			}
			if i := slices.IndexFunc(cm.Files, func(f *pb.ManifestFile) bool { return f.Name == m.Artifact }); i >= 0 {
				members = append(members, stratumMember{CacheKey: m.CacheKey, Artifact: m.Artifact, Chunk: cm.StepName})
				t.rec.used(m.CacheKey, cm.Files[i])
			}
		}
		data, err := json.MarshalIndent(members, "", "  ")
		if err != nil {
			return nil, err
		}
		what := "uploading " + a.Name
		t.prof.phase("upload")
		d, err := r.uploadBytes(ctx, what, data)
		if err != nil {
			return nil, doing(what, err)
		}
		files = append(files, &pb.ManifestFile{Name: a.Name, Role: pb.FileRole_FILE_ROLE_METADATA, Digest: d.Proto()})
		out.note("# %s: %d chunk artifacts", a.Name, len(members))
	}
	return files, nil
}

// assembleSystem stages the system's chunk artifacts into a root file
// system, runs the system-integration commands inside it, and packs it as
// the "<system>-rootfs" artifact.
func (r *Runner) assembleSystem(ctx context.Context, t *task, s *pb.SystemJob) ([]*pb.ManifestFile, error) {
	out := t.out
	t.rep.Phase(pb.JobPhase_JOB_PHASE_STAGING)
	t.prof.phase("stage")
	root := filepath.Join(t.dir, "root")
	written := slices.ContainsFunc(s.Integration, func(i *pb.IntegrationCommands) bool { return len(i.Commands) > 0 })
	stager, overlay := r.systemStager(written)
	// With an overlay, the artifacts are linked into lower, under the
	// root that integration commands write to.
	lower := root
	if overlay {
		lower = filepath.Join(t.dir, "lower")
	}
	for _, d := range []string{root, lower} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	manifests := map[string]*pb.Manifest{}
	var arts []artifact
	for _, c := range s.Contents {
		m, ok := manifests[c.CacheKey]
		if !ok {
			var err error
			if m, err = r.manifest(ctx, c.CacheKey); err != nil {
				return nil, err
			}
			manifests[c.CacheKey] = m
		}
		i := slices.IndexFunc(m.Files, func(f *pb.ManifestFile) bool { return f.Name == c.Artifact })
		if i < 0 {
			continue // the chunk installed nothing for this split
		}
		a, err := r.artifactOf(t, c.CacheKey, m.Files[i])
		if err != nil {
			return nil, err
		}
		arts = append(arts, a)
	}
	if err := stager.stage(ctx, t, lower, arts); err != nil {
		return nil, err
	}
	for _, a := range arts {
		out.note("# added %s", a.name)
	}
	t.rec.sourceDate = latestSourceDate(manifests)
	if overlay {
		if err := r.overlayRoot(t, lower, root); err != nil {
			return nil, err
		}
	}

	t.rep.Phase(pb.JobPhase_JOB_PHASE_RUNNING)
	for _, step := range s.Integration {
		for _, cmd := range step.Commands {
			t.prof.phase("system-integration")
			out.note("# system-integration %s: %s", step.Name, cmd)
			if err := r.integrate(ctx, t, root, cmd); err != nil {
				return nil, err
			}
		}
	}

	t.rep.Phase(pb.JobPhase_JOB_PHASE_UPLOADING)
	t.prof.phase("pack")
	name := t.job.Name + "-rootfs"
	return r.packAndUpload(ctx, t, root, filepath.Join(t.dir, "artifacts"), func(string) (string, bool) { return name, true })
}

// latestSourceDate is a system's source date: the latest of its chunks'
// (zero when none of their manifests records one). It depends only on
// which chunk artifacts the system holds, as its cache key does.
func latestSourceDate(manifests map[string]*pb.Manifest) time.Time {
	var latest time.Time
	for _, m := range manifests {
		if d := m.GetSourceDate(); d != nil && d.AsTime().After(latest) {
			latest = d.AsTime()
		}
	}
	return latest
}

// integrationEnv is the environment of system-integration commands: a
// clean base and, when the system has one, its source date as
// SOURCE_DATE_EPOCH, which tools such as useradd (the last-change date in
// /etc/shadow) stamp instead of the time they run.
func integrationEnv(sourceDate time.Time) []string {
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "LC_ALL=C"}
	if !sourceDate.IsZero() {
		env = append(env, "SOURCE_DATE_EPOCH="+strconv.FormatInt(sourceDate.Unix(), 10))
	}
	return env
}

// overlayRoot mounts an overlay of lower, the linked artifacts, at root for
// the job, with an upper layer of its own taking what integration
// commands write.
func (r *Runner) overlayRoot(t *task, lower, root string) error {
	upper, work := filepath.Join(t.dir, "upper"), filepath.Join(t.dir, "overlay-work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	undo, err := mountOverlay(lower, upper, work, root)
	if err != nil {
		return err
	}
	t.onEnd(func() { r.undo(undo) })
	return nil
}

// packAndUpload packs tree into split artifacts by classify and uploads
// them, describing each for the manifest.
func (r *Runner) packAndUpload(ctx context.Context, t *task, tree, outDir string, classify func(string) (string, bool)) ([]*pb.ManifestFile, error) {
	out := t.out
	packed, err := tarball.Pack(tree, outDir, classify)
	if err != nil {
		return nil, fmt.Errorf("packing the artifacts: %w", err)
	}
	t.prof.phase("upload")
	var files []*pb.ManifestFile
	for _, a := range packed {
		f, err := r.upload(ctx, a.Path, a.Name, a.SHA256, a.Size)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		out.note("# artifact %s: %d bytes", a.Name, a.Size)
	}
	return files, nil
}

// integrate runs one system-integration command in the sandbox, with the
// assembled root as its whole, writable, root file system. Like a build
// command, it runs in a process group of its own (under bubblewrap, a pid
// namespace), all of which is killed when the job ends or the command
// writes nothing for Config.StallTimeout.
func (r *Runner) integrate(ctx context.Context, t *task, root, command string) error {
	out := t.out
	return r.runCommand(ctx, t, sandbox.Spec{
		Mode:            r.cfg.Sandbox,
		Root:            root,
		Command:         command,
		Env:             integrationEnv(t.rec.sourceDate),
		Stdout:          out.stream(pb.OutputStream_OUTPUT_STREAM_STDOUT),
		Stderr:          out.stream(pb.OutputStream_OUTPUT_STREAM_STDERR),
		NoOutputTimeout: r.cfg.StallTimeout,
	}, "system-integration")
}
