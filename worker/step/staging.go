package step

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/tarball"
	"distbuild/worker/sandbox"
)

// stager lays split artifacts out in a directory: a chunk's staging area
// or a system's root. Every artifact a step uses reaches the disk through
// one: unpacker, which unpacks each tarball afresh, or linker, which links
// a tree unpacked once into place (see chunkStager and systemStager for
// which is used where).
type stager interface {
	// stage adds artifact a to dest for the job t is running; artifacts
	// staged later into the same dest go over earlier ones.
	stage(ctx context.Context, t *task, dest string, a artifact) error
}

// artifact is one split artifact to stage.
type artifact struct {
	name string
	blob digest.Digest
	// opts says what it may contain (see unpackOptions).
	opts tarball.UnpackOptions
}

// unpacker stages an artifact by downloading its blob (from the local
// blob cache when it is there) and unpacking it, checking every entry.
type unpacker struct{ r *Runner }

func (u unpacker) stage(ctx context.Context, t *task, dest string, a artifact) error {
	f, err := u.r.openBlob(ctx, a.blob, t.dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tarball.Unpack(f, dest, a.opts); err != nil {
		return fmt.Errorf("unpacking %s: %w", a.name, err)
	}
	return nil
}

// openBlob downloads blob d into scratch and opens it. The file is
// removed at once: the open copy is the caller's until it closes it.
func (r *Runner) openBlob(ctx context.Context, d digest.Digest, scratch string) (*os.File, error) {
	path := filepath.Join(scratch, "blob-"+d.Hash().String())
	if err := r.download(ctx, d, path); err != nil {
		return nil, doing("downloading "+d.String(), err)
	}
	f, err := os.Open(path)
	os.Remove(path)
	return f, err
}

// stageArtifact stages file f of the manifest of the chunk with cache key
// k into dest with s.
func (r *Runner) stageArtifact(ctx context.Context, t *task, s stager, dest, k string, f *pb.ManifestFile) error {
	d, err := digest.FromProto(f.Digest)
	if err != nil {
		return err
	}
	t.rec.used(k, f)
	return missingInput(k, s.stage(ctx, t, dest, artifact{name: f.Name, blob: d, opts: r.unpackOptions(t.job, k)}))
}

// chunkStager says how to stage a chunk's staging area, which its build
// may read but must not change: by linking when the runner can make the
// area read-only for the build (readOnly: by mounting it so, which
// bubblewrap does itself), else by unpacking afresh.
func (r *Runner) chunkStager() (s stager, readOnly bool) {
	switch {
	case r.link == nil:
		return unpacker{r}, false
	case r.cfg.Sandbox == sandbox.Bwrap:
		return r.link, false
	case r.mounts:
		return r.link, true
	}
	return unpacker{r}, false
}

// systemStager says how to stage a system's root: by linking when nothing
// will write to it (no integration commands) or the runner can put an
// overlay over the linked tree for them to write to (overlay), else by
// unpacking afresh.
func (r *Runner) systemStager(written bool) (s stager, overlay bool) {
	switch {
	case r.link == nil:
		return unpacker{r}, false
	case !written:
		return r.link, false
	case r.overlays:
		return r.link, true
	}
	return unpacker{r}, false
}

// unpackOptions says what an artifact of the chunk with cache key k may
// contain: device files only when the job says that chunk declares devices,
// setuid and setgid programs only when the worker allows them.
func (r *Runner) unpackOptions(job *pb.Job, k string) tarball.UnpackOptions {
	return tarball.UnpackOptions{AllowDevices: slices.Contains(job.DeviceCacheKeys, k), AllowSetuid: r.cfg.AllowSetuid}
}

// stage stages every split artifact of the job's staged chunks into dest
// with s, in order, as a chunk's staging area.
func (r *Runner) stage(ctx context.Context, t *task, s stager, dest string) error {
	for _, k := range t.job.Staging {
		m, err := r.manifest(ctx, k)
		if err != nil {
			return err
		}
		for _, f := range m.Files {
			if f.Role != pb.FileRole_FILE_ROLE_ARTIFACT {
				continue
			}
			if err := r.stageArtifact(ctx, t, s, dest, k, f); err != nil {
				return err
			}
		}
		t.out.note("staged %s (%s)", m.StepName, k[:12])
	}
	return nil
}
