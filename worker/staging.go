package worker

import (
	"context"
	"fmt"
	"os"
	"slices"

	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/tarball"
)

// openBlob returns a blob from the local cache, opened, downloading (and
// verifying) it first when it is not there. Blobs are immutable and named
// by digest, so a present file is the right content.
func (w *Worker) openBlob(ctx context.Context, d *pb.Digest) (*os.File, error) {
	dg, err := digest.FromProto(d)
	if err != nil {
		return nil, err
	}
	f, err := w.blobs.open(ctx, dg, func(ctx context.Context, path string) error {
		return w.download(ctx, dg, path)
	})
	if err != nil {
		return nil, doing("downloading "+dg.String(), err)
	}
	return f, nil
}

// unpackArtifact extracts one file of a manifest into dest.
func (w *Worker) unpackArtifact(ctx context.Context, f *pb.ManifestFile, dest string, opts tarball.UnpackOptions) error {
	r, err := w.openBlob(ctx, f.Digest)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := tarball.Unpack(r, dest, opts); err != nil {
		return fmt.Errorf("unpacking %s: %w", f.Name, err)
	}
	return nil
}

// unpackOptions says what an artifact of the chunk with cache key k may
// contain: device files only when the job says that chunk declares devices,
// setuid and setgid programs only when the worker allows them.
func (w *Worker) unpackOptions(job *pb.Job, k string) tarball.UnpackOptions {
	return tarball.UnpackOptions{AllowDevices: slices.Contains(job.DeviceCacheKeys, k), AllowSetuid: w.cfg.AllowSetuid}
}

// stage unpacks every split artifact of the job's staged chunks into dest,
// in order, as a chunk's staging area.
func (w *Worker) stage(ctx context.Context, job *pb.Job, dest string, out *output) error {
	for _, k := range job.Staging {
		m, err := w.manifest(ctx, k)
		if err != nil {
			return err
		}
		for _, f := range m.Files {
			if f.Role != pb.FileRole_FILE_ROLE_ARTIFACT {
				continue
			}
			if err := w.unpackArtifact(ctx, f, dest, w.unpackOptions(job, k)); err != nil {
				return err
			}
		}
		out.note("staged %s (%s)", m.StepName, k[:12])
	}
	return nil
}
