package step

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"distbuild/internal/checkreport"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

// twoWorkers are two runners, as on two workers, sharing one real trove.
func twoWorkers(t *testing.T) (builder, checker *Runner) {
	addr := startCache(t)
	builder = newTestRunner(t, sandbox.None, func(c *Config) { c.Worker, c.Cache = "builder", dialCache(t, addr) })
	checker = newTestRunner(t, sandbox.None, func(c *Config) { c.Worker, c.Cache = "checker", dialCache(t, addr) })
	return builder, checker
}

// checkOf is spec as a check job: another job id, the same cache key.
func checkOf(spec *pb.Job, builtBy string) *pb.Job {
	c := proto.Clone(spec).(*pb.Job)
	c.JobId += "-check"
	c.Check = &pb.CheckJob{BuiltBy: builtBy}
	return c
}

// buildThenCheck builds spec on builder, then checks it on checker, and
// returns the check's result and the manifest cached before the check.
func buildThenCheck(t *testing.T, commands ...string) (*pb.CheckResult, *pb.Manifest, *Runner) {
	t.Helper()
	builder, checker := twoWorkers(t)
	repo, commit := gitRepo(t, map[string]string{"hello.txt": "hello\n"})
	spec := chunkSpec(repo, commit, commands...)
	built := runJob(t, builder, spec)
	if built.phase != pb.JobPhase_JOB_PHASE_DONE {
		t.Fatalf("the first build ended in %v (%v)", built.phase, built.failure)
	}
	j := runJob(t, checker, checkOf(spec, "builder"))
	if j.phase != pb.JobPhase_JOB_PHASE_DONE || j.check == nil || j.manifest != nil {
		t.Fatalf("the check ended in %v with check %v, manifest %v, failure %v; want done with a check result only", j.phase, j.check, j.manifest, j.failure)
	}
	stored, err := checker.manifest(context.Background(), spec.CacheKey)
	if err != nil || !proto.Equal(stored, built.manifest) {
		t.Errorf("after the check the cache holds %v (%v); want the first build's manifest, untouched", stored, err)
	}
	return j.check, built.manifest, checker
}

func TestACheckOfAReproducibleStepFindsItIdentical(t *testing.T) {
	res, built, _ := buildThenCheck(t, `mkdir -p "$DESTDIR/usr/share" && cp hello.txt "$DESTDIR/usr/share/" && echo "$SOURCE_DATE_EPOCH" > "$DESTDIR/usr/share/built-at"`)
	if res.Outcome != pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE || len(res.Differences) != 0 {
		t.Errorf("check: %s %v; want reproducible", checkreport.Summary(res), res.Differences)
	}
	if res.BuiltBy != "builder" || res.CheckedBy != "checker" || res.Log == nil || res.Checked == nil {
		t.Errorf("check result %v lacks who built, who checked, its log or its time", res)
	}
	if len(res.Rebuilt) != 1 || !proto.Equal(res.Rebuilt[0].Digest, built.Files[0].Digest) {
		t.Errorf("rebuilt artifacts %v; want the cached %v", res.Rebuilt, built.Files[0])
	}
}

func TestACheckOfAStepThatEmbedsItsBuildTimeNamesExactlyTheDifferingFile(t *testing.T) {
	// diffoscope, when the worker has it, reports on what differs; a
	// stand-in shows the worker runs it on the two tarballs and keeps what
	// it says.
	bin := t.TempDir()
	stand := "#!/bin/sh\necho \"diffoscope stand-in: $*\"\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "diffoscope"), []byte(stand), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	res, _, checker := buildThenCheck(t, `mkdir -p "$DESTDIR/usr/share" && cp hello.txt "$DESTDIR/usr/share/" && date +%s%N > "$DESTDIR/usr/share/stamp"`)
	if res.Outcome != pb.CheckOutcome_CHECK_OUTCOME_DIFFERS {
		t.Fatalf("check: %s; want differs", checkreport.Summary(res))
	}
	var got []string
	for _, d := range res.Differences {
		got = append(got, d.Artifact+" "+d.Path+" "+d.What)
	}
	if want := []string{"hello-bins usr/share/stamp content"}; !slices.Equal(got, want) {
		t.Errorf("differences %q; want exactly %q", got, want)
	}
	if res.Diffoscope == nil {
		t.Fatal("no diffoscope report was stored")
	}
	report := string(fetchBlob(t, checker, res.Diffoscope))
	if !strings.Contains(report, "diffoscope stand-in: --text - ") || !strings.Contains(report, "cached-hello-bins.tar") || !strings.Contains(report, "rebuilt-hello-bins.tar") {
		t.Errorf("diffoscope's report %q does not show it compared the two tarballs", report)
	}
	if log := string(fetchBlob(t, checker, res.Log)); !strings.Contains(log, "usr/share/stamp: content differs") || !strings.Contains(log, "NOT reproducible: 1 difference") {
		t.Errorf("the check's log does not say what differs:\n%s", log)
	}
}

func TestACheckOfAStepWithNothingCachedIsNotChecked(t *testing.T) {
	_, checker := twoWorkers(t)
	repo, commit := gitRepo(t, map[string]string{"hello.txt": "hello\n"})
	j := runJob(t, checker, checkOf(chunkSpec(repo, commit, `mkdir -p "$DESTDIR/x"`), "builder"))
	if j.phase != pb.JobPhase_JOB_PHASE_DONE || j.check.GetOutcome() != pb.CheckOutcome_CHECK_OUTCOME_NOT_CHECKED || !strings.Contains(j.check.GetReason(), "no longer in the cache") {
		t.Errorf("check of an uncached step: %v %v (%v); want not checked, saying the artifact is gone", j.phase, j.check, j.failure)
	}
}
