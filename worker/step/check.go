package step

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/digest"
	"distbuild/internal/checkreport"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/tarball"
)

// maxListedDifferences bounds the differences a check reports one by one;
// the rest are counted. A rebuild that differs everywhere (a new compiler
// stamp in every object) needs its first few, not a megabyte of them.
const maxListedDifferences = 200

// diffoscopeTimeout bounds diffoscope's report on one check: it can take
// very long on large artifacts, and the report is a help, not the result.
const diffoscopeTimeout = 10 * time.Minute

// compare ends a check job: its rebuilt artifacts, already stored in the
// cache by digest, are compared with those in the manifest cached under the
// job's key, artifact by artifact and, where their digests differ, entry by
// entry. What it finds is written to the job's log as well as returned.
// A cached artifact that has vanished makes the check NOT_CHECKED rather
// than a failure: there is nothing to compare with.
func (r *Runner) compare(ctx context.Context, t *task, rebuilt []*pb.ManifestFile) (*pb.CheckResult, error) {
	job := t.job
	built, rebuiltList := comparedFiles(rebuilt)
	res := &pb.CheckResult{CacheKey: job.CacheKey, StepName: job.Name, BuiltBy: job.Check.GetBuiltBy(), CheckedBy: r.cfg.Worker, Rebuilt: rebuiltList}
	t.prof.phase("compare")
	t.out.note("# check: comparing with the artifacts %s built", orUnknown(res.BuiltBy))
	m, err := r.manifest(ctx, job.CacheKey)
	if errors.As(err, new(*missingInputError)) {
		res.Outcome, res.Reason = pb.CheckOutcome_CHECK_OUTCOME_NOT_CHECKED, "the cached artifact is no longer in the cache"
		t.out.note("# check: not checked: %s", res.Reason)
		return stamped(r, res), nil
	}
	if err != nil {
		return nil, err
	}
	cached, cachedList := comparedFiles(m.Files)
	res.Cached = cachedList
	names := make([]string, 0, len(cached)+len(built))
	for n := range cached {
		names = append(names, n)
	}
	for n := range built {
		if _, ok := cached[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var diffs []*pb.FileDifference
	var pairs [][2]string // tarballs that differ: cached, rebuilt
	scratch := filepath.Join(t.dir, "check")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return nil, err
	}
	for _, name := range names {
		c, inCached := cached[name]
		b, inBuilt := built[name]
		switch {
		case !inBuilt:
			diffs = append(diffs, &pb.FileDifference{Artifact: name, What: tarball.OnlyCached, Cached: c.digest.String()})
			continue
		case !inCached:
			diffs = append(diffs, &pb.FileDifference{Artifact: name, What: tarball.OnlyRebuilt, Rebuilt: b.digest.String()})
			continue
		case c == b:
			continue
		case !c.tarball || !b.tarball:
			// Metadata (a stratum's member list): compared whole.
			diffs = append(diffs, &pb.FileDifference{Artifact: name, What: "content", Cached: c.digest.String(), Rebuilt: b.digest.String()})
			continue
		}
		cpath, bpath := filepath.Join(scratch, "cached-"+name+".tar"), filepath.Join(scratch, "rebuilt-"+name+".tar")
		found, err := r.compareTarballs(ctx, c.digest, b.digest, cpath, bpath)
		if err != nil {
			return nil, fmt.Errorf("comparing %s: %w", name, err)
		}
		if len(found) == 0 {
			// Same files, different tarball bytes: packing is not
			// deterministic, which is the farm's bug, not the build's.
			found = []tarball.Difference{{What: "tarball bytes", Cached: c.digest.String(), Rebuilt: b.digest.String()}}
		}
		for _, d := range found {
			diffs = append(diffs, &pb.FileDifference{Artifact: name, Path: d.Path, What: d.What, Cached: d.Cached, Rebuilt: d.Rebuilt})
		}
		pairs = append(pairs, [2]string{cpath, bpath})
	}
	res.Outcome = pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE
	if len(diffs) > 0 {
		res.Outcome = pb.CheckOutcome_CHECK_OUTCOME_DIFFERS
	}
	if len(diffs) > maxListedDifferences {
		res.MoreDifferences = int32(len(diffs) - maxListedDifferences)
		diffs = diffs[:maxListedDifferences]
	}
	res.Differences = diffs
	for _, d := range diffs {
		t.out.note("# check: %s", checkreport.Difference(d))
	}
	if res.MoreDifferences > 0 {
		t.out.note("# check: ... and %d more differences", res.MoreDifferences)
	}
	if len(pairs) > 0 {
		res.Diffoscope = r.diffoscope(ctx, t, scratch, pairs)
	}
	t.out.note("# check: %s", checkreport.Summary(res))
	return stamped(r, res), nil
}

// compareTarballs downloads two blobs and compares their entries.
func (r *Runner) compareTarballs(ctx context.Context, cached, rebuilt digest.Digest, cpath, bpath string) ([]tarball.Difference, error) {
	for _, x := range []struct {
		d    digest.Digest
		path string
	}{{cached, cpath}, {rebuilt, bpath}} {
		if err := r.download(ctx, x.d, x.path); err != nil {
			return nil, doing("downloading "+x.d.String(), err)
		}
	}
	cf, err := os.Open(cpath)
	if err != nil {
		return nil, err
	}
	defer cf.Close()
	bf, err := os.Open(bpath)
	if err != nil {
		return nil, err
	}
	defer bf.Close()
	return tarball.Compare(cf, bf)
}

// diffoscope, when the worker has it on its PATH, reports in detail on
// each pair of differing tarballs, and stores the report in the cache.
// Without diffoscope, or when it fails, the check goes on without a
// report: the file-by-file comparison is the result.
func (r *Runner) diffoscope(ctx context.Context, t *task, scratch string, pairs [][2]string) *pb.Digest {
	tool, err := exec.LookPath("diffoscope")
	if err != nil {
		return nil
	}
	report := filepath.Join(scratch, "diffoscope.txt")
	f, err := os.Create(report)
	if err != nil {
		t.out.note("# check: cannot run diffoscope: %v", err)
		return nil
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, diffoscopeTimeout)
	defer cancel()
	for _, p := range pairs {
		cmd := exec.CommandContext(ctx, tool, "--text", "-", p[0], p[1])
		cmd.Stdout, cmd.Stderr = f, f
		// diffoscope exits 1 when it finds differences, as it should here.
		if err := cmd.Run(); err != nil && cmd.ProcessState.ExitCode() != 1 {
			t.out.note("# check: diffoscope on %s failed: %v", filepath.Base(p[1]), err)
		}
	}
	info, err := f.Stat()
	if err != nil {
		return nil
	}
	d, err := hashFile(report, info.Size())
	if err == nil {
		err = r.uploadFile(ctx, "uploading diffoscope's report", report, d)
	}
	if err != nil {
		t.out.note("# check: cannot store diffoscope's report: %v", err)
		return nil
	}
	t.out.note("# check: diffoscope's report is %s in the cache", d)
	return d.Proto()
}

// compared is one file of a step's output as a check compares it.
type compared struct {
	digest digest.Digest
	// tarball is set for split artifacts, compared entry by entry when
	// they differ; metadata is compared whole.
	tarball bool
}

// comparedFiles picks out of a manifest's files what a check compares
// (checkreport.Compares), by name and as a list for the result.
func comparedFiles(files []*pb.ManifestFile) (map[string]compared, []*pb.ArtifactDigest) {
	out := map[string]compared{}
	var list []*pb.ArtifactDigest
	for _, f := range files {
		if !checkreport.Compares(f.Role) {
			continue
		}
		if d, err := digest.FromProto(f.Digest); err == nil {
			out[f.Name] = compared{digest: d, tarball: f.Role == pb.FileRole_FILE_ROLE_ARTIFACT}
			list = append(list, &pb.ArtifactDigest{Name: f.Name, Digest: f.Digest})
		}
	}
	return out, list
}

func stamped(r *Runner, res *pb.CheckResult) *pb.CheckResult {
	res.Checked = timestamppb.New(r.cfg.Clock.Now())
	return res
}

func orUnknown(worker string) string {
	if worker == "" {
		return "an unknown worker"
	}
	return worker
}
