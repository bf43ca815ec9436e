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
	// stage adds arts to dest, in order, for the job t is running: each
	// artifact goes over those before it. A blob the cache does not have
	// is reported as missing its artifact's chunk (missingInput).
	stage(ctx context.Context, t *task, dest string, arts []artifact) error
}

// artifact is one split artifact to stage.
type artifact struct {
	name string
	// key is the cache key of the chunk that built it.
	key  string
	blob digest.Digest
	// opts says what it may contain (see unpackOptions).
	opts tarball.UnpackOptions
}

// unpacker stages an artifact by downloading its blob (from the local
// blob cache when it is there) and unpacking it, checking every entry.
type unpacker struct{ r *Runner }

func (u unpacker) stage(ctx context.Context, t *task, dest string, arts []artifact) error {
	for _, a := range arts {
		if err := u.unpack(ctx, filepath.Join(t.dir, "blob-"+a.blob.Hash().String()), dest, a); err != nil {
			return missingInput(a.key, err)
		}
	}
	return nil
}

// unpack downloads a's blob to scratch, a path of its own, and unpacks it
// into dest.
func (u unpacker) unpack(ctx context.Context, scratch, dest string, a artifact) error {
	f, err := u.r.openBlob(ctx, a.blob, scratch)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tarball.Unpack(f, dest, a.opts); err != nil {
		return fmt.Errorf("unpacking %s: %w", a.name, err)
	}
	return nil
}

// openBlob downloads blob d to path and opens it. The file is removed at
// once: the open copy is the caller's until it closes it.
func (r *Runner) openBlob(ctx context.Context, d digest.Digest, path string) (*os.File, error) {
	if err := r.download(ctx, d, path); err != nil {
		return nil, doing("downloading "+d.String(), err)
	}
	f, err := os.Open(path)
	os.Remove(path)
	return f, err
}

// artifactOf is file f of the manifest of the chunk with cache key k, as
// an artifact to stage for t's job, recorded as used by it.
func (r *Runner) artifactOf(t *task, k string, f *pb.ManifestFile) (artifact, error) {
	d, err := digest.FromProto(f.Digest)
	if err != nil {
		return artifact{}, err
	}
	t.rec.used(k, f)
	return artifact{name: f.Name, key: k, blob: d, opts: r.unpackOptions(t.job, k)}, nil
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
	var arts []artifact
	var notes []string
	for _, k := range t.job.Staging {
		m, err := r.manifest(ctx, k)
		if err != nil {
			return err
		}
		for _, f := range m.Files {
			if f.Role != pb.FileRole_FILE_ROLE_ARTIFACT {
				continue
			}
			a, err := r.artifactOf(t, k, f)
			if err != nil {
				return err
			}
			arts = append(arts, a)
		}
		notes = append(notes, fmt.Sprintf("staged %s (%s)", m.StepName, k[:12]))
	}
	if err := s.stage(ctx, t, dest, arts); err != nil {
		return err
	}
	for _, n := range notes {
		t.out.note("%s", n)
	}
	return nil
}
