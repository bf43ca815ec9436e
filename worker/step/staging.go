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
)

// stager lays split artifacts out in a directory: a chunk's staging area
// or a system's root. Every artifact a step uses reaches the disk through
// it, so that unpacking each tarball afresh (unpacker, today's) can be
// replaced by a stager that unpacks each blob once and links it into
// place, without changing the rest of the runner.
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
// k into dest.
func (r *Runner) stageArtifact(ctx context.Context, t *task, dest, k string, f *pb.ManifestFile) error {
	d, err := digest.FromProto(f.Digest)
	if err != nil {
		return err
	}
	return missingInput(k, r.stager.stage(ctx, t, dest, artifact{name: f.Name, blob: d, opts: r.unpackOptions(t.job, k)}))
}

// unpackOptions says what an artifact of the chunk with cache key k may
// contain: device files only when the job says that chunk declares devices,
// setuid and setgid programs only when the worker allows them.
func (r *Runner) unpackOptions(job *pb.Job, k string) tarball.UnpackOptions {
	return tarball.UnpackOptions{AllowDevices: slices.Contains(job.DeviceCacheKeys, k), AllowSetuid: r.cfg.AllowSetuid}
}

// stage stages every split artifact of the job's staged chunks into dest,
// in order, as a chunk's staging area.
func (r *Runner) stage(ctx context.Context, t *task, dest string) error {
	for _, k := range t.job.Staging {
		m, err := r.manifest(ctx, k)
		if err != nil {
			return err
		}
		for _, f := range m.Files {
			if f.Role != pb.FileRole_FILE_ROLE_ARTIFACT {
				continue
			}
			if err := r.stageArtifact(ctx, t, dest, k, f); err != nil {
				return err
			}
		}
		t.out.note("staged %s (%s)", m.StepName, k[:12])
	}
	return nil
}
