package step

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"distbuild/clock"
	"distbuild/internal/gittest"
	"distbuild/manifestsig"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

func TestChunkJobBuildsFromGitAndStoresArtifactsAndLog(t *testing.T) {
	// With every watchdog armed, as in production, and a log limit it
	// stays under.
	w := newTestRunner(t, sandbox.None, func(c *Config) {
		c.StallTimeout, c.TransferStallTimeout, c.LogLimit = time.Minute, time.Minute, 1<<20
		c.Cache = dialCache(t, startCache(t)) // the whole way into a real trove
	})
	repo, commit := gitRepo(t, map[string]string{"hello.txt": "hello\n"})
	j := runJob(t, w, chunkSpec(repo, commit, `mkdir -p "$DESTDIR/usr/share" && cp hello.txt "$DESTDIR/usr/share/" && echo installed`))
	if j.phase != pb.JobPhase_JOB_PHASE_DONE {
		t.Fatalf("job ended in %v (%v); want done", j.phase, j.failure)
	}
	var artifact, log *pb.ManifestFile
	for _, f := range j.manifest.Files {
		switch f.Name {
		case "hello-bins":
			artifact = f
		case "log":
			log = f
		}
	}
	if artifact == nil || log == nil {
		t.Fatalf("manifest files %v; want hello-bins and log", j.manifest.Files)
	}
	if root := readTar(t, w, artifact.Digest); root["usr/share/hello.txt"] != "hello\n" {
		t.Errorf("artifact holds %v; want usr/share/hello.txt", root)
	}
	if text := string(fetchBlob(t, w, log.Digest)); !strings.Contains(text, "# build: ") || !strings.Contains(text, "s] installed\n") {
		t.Errorf("stored log %q lacks the command and its output", text)
	}
	stored, err := w.manifest(context.Background(), j.spec.CacheKey)
	if err != nil || stored.StepName != "hello" {
		t.Fatalf("manifest in the cache: %v, %v; want the step's", stored, err)
	}
	if err := manifestsig.Verify(stored, w.cfg.SigningKey.Public().(ed25519.PublicKey)); err != nil || stored.Signature.Signer != "test" {
		t.Errorf("the stored manifest is not signed by the worker: %v (signature %v)", err, stored.Signature)
	}
}

func TestFailingCommandIsABuildFailureWithItsLog(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	f := failed(t, runJob(t, w, chunkSpec(repo, commit, "echo compiling; echo 'error: broken' >&2; exit 3")))
	if f.Kind != pb.FailureKind_FAILURE_KIND_BUILD || f.ExitCode != 3 || f.Reason != "build command exited with status 3: echo compiling; echo 'error: broken' >&2; exit 3" {
		t.Errorf("failure %v %q exit %d; want a build failure with exit status 3", f.Kind, f.Reason, f.ExitCode)
	}
	if f.Log == nil {
		t.Fatal("the failed step's log was not stored")
	}
	if log := string(fetchBlob(t, w, f.Log)); !strings.Contains(log, "error: broken\n") || !strings.Contains(log, "# distbuild: FAILED: build command exited with status 3") {
		t.Errorf("stored log %q lacks the command's output or the failure", log)
	}
}

func TestFailingCommandOnAFullDiskIsASetupFailure(t *testing.T) {
	// Any real disk has less free space than this, so the worker takes it
	// for full; the same command on a worker with room is a build failure
	// (TestFailingCommandIsABuildFailureWithItsLog).
	w := newTestRunner(t, sandbox.None, func(c *Config) { c.MinFreeBytes = 1 << 62 })
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	f := failed(t, runJob(t, w, chunkSpec(repo, commit, "exit 1")))
	if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || !strings.HasPrefix(f.Reason, "the worker's disk is full: build command ") || !strings.Contains(f.Reason, "exited with status 1 with only ") {
		t.Errorf("failure %v %q; want a setup failure saying the disk is full", f.Kind, f.Reason)
	}
}

func TestSilentCommandIsStoppedAsStalledSetupFailure(t *testing.T) {
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	for _, mode := range []sandbox.Mode{sandbox.None, sandbox.Bwrap} {
		t.Run(string(mode), func(t *testing.T) {
			w := newTestRunner(t, mode, func(c *Config) { c.StallTimeout = 500 * time.Millisecond })
			sleep, arg := sleepCommand()
			f := failed(t, runJob(t, w, chunkSpec(repo, commit, "echo starting", sleep)))
			want := fmt.Sprintf("build command %q made no output for 500ms and was stopped as stalled", sleep)
			if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || f.Reason != want {
				t.Errorf("failure %v %q; want a setup failure %q", f.Kind, f.Reason, want)
			}
			waitGone(t, arg)
			if f.Log == nil || !strings.Contains(string(fetchBlob(t, w, f.Log)), "# distbuild: FAILED: "+want) {
				t.Error("the stalled step's log was not stored, or does not say why it failed")
			}
		})
	}
}

func TestStepTimeoutStopsTheCommandAsSetupFailure(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	sleep, arg := sleepCommand()
	f := failed(t, runJob(t, w, withTimeout(chunkSpec(repo, commit, sleep), 500*time.Millisecond)))
	if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || f.Reason != "step exceeded its 500ms timeout" {
		t.Errorf("failure %v %q; want setup failure %q", f.Kind, f.Reason, "step exceeded its 500ms timeout")
	}
	waitGone(t, arg)
	if f.Log == nil || !strings.Contains(string(fetchBlob(t, w, f.Log)), "(step exceeded its 500ms timeout)") {
		t.Error("the timed-out step's log was not stored, or does not say why it failed")
	}
}

func TestCancelledJobReportsCancelledAndKillsItsCommand(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	sleep, arg := sleepCommand()
	spec := chunkSpec(repo, commit, sleep)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		for len(withArg(arg)) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel(errors.New("cancelled")) // as the session does on the controller's word
	}()
	f := failed(t, runJobIn(t, ctx, w, spec, newRecorder()))
	if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || f.Reason != "cancelled" {
		t.Errorf("failure %v %q; want a setup failure %q", f.Kind, f.Reason, "cancelled")
	}
	waitGone(t, arg)
}

func TestLogOverTheLimitKeepsHeadMarkerAndTail(t *testing.T) {
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	const limit = 64 << 10
	// seq prints 108894 bytes, then the notes follow.
	const command = "seq 1 20000"
	// A clock that stands still stamps every line of both runs alike.
	still := func(c *Config) { c.Clock = clock.NewFake(time.Unix(0, 0)) }
	full := newTestRunner(t, sandbox.None, still)
	j := runJob(t, full, chunkSpec(repo, commit, command))
	capped := newTestRunner(t, sandbox.None, still, func(c *Config) { c.LogLimit = limit })
	k := runJob(t, capped, chunkSpec(repo, commit, command))
	if j.manifest == nil || k.manifest == nil {
		t.Fatalf("jobs failed: %v, %v", j.failure, k.failure)
	}
	whole := storedLogOf(t, full, j.manifest)
	got := storedLogOf(t, capped, k.manifest)
	if len(whole) <= limit {
		t.Fatalf("the uncapped log has only %d bytes; the test needs more than %d", len(whole), limit)
	}
	// The cut falls inside a line, so the marker starts a line of its own.
	marker := fmt.Sprintf("\n[distbuild: %d bytes of output omitted here; log limit 64KiB]\n", len(whole)-limit)
	want := whole[:limit/2] + marker + whole[len(whole)-limit/2:]
	if got != want {
		t.Errorf("capped log (%d bytes) is not the first and last 32KiB of the whole log with %q between them", len(got), marker)
	}
	if !strings.HasSuffix(got, "] 20000\n[   0.000s] # the chunk installed nothing\n") {
		t.Errorf("capped log ends %q; want the end of the output", got[len(got)-100:])
	}
}

// storedLogOf fetches the log a manifest records.
func storedLogOf(t *testing.T, w *Runner, m *pb.Manifest) string {
	t.Helper()
	for _, f := range m.Files {
		if f.Role == pb.FileRole_FILE_ROLE_LOG {
			return string(fetchBlob(t, w, f.Digest))
		}
	}
	t.Fatalf("manifest %v has no log", m)
	return ""
}

func TestFullDiskWhileWritingTheLogIsSetupFailure(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	spec := chunkSpec(repo, commit, "echo built")
	// The job's log file is on a "disk" that is always full.
	dir := filepath.Join(w.cfg.WorkDir, "jobs", spec.JobId)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(dir, "log")); err != nil {
		t.Fatal(err)
	}
	f := failed(t, runJob(t, w, spec))
	if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || !strings.HasPrefix(f.Reason, "the worker's disk is full: writing the build log: ") {
		t.Errorf("failure %v %q; want a setup failure saying the disk is full", f.Kind, f.Reason)
	}
	if f.Log == nil || len(fetchBlob(t, w, f.Log)) != 0 {
		t.Errorf("stored log %v; want the empty log the full disk left", f.Log)
	}
}

func TestSourceFetchFromSilentServerIsStoppedAsStalled(t *testing.T) {
	w := newTestRunner(t, sandbox.None, func(c *Config) { c.TransferStallTimeout = 500 * time.Millisecond })
	url := "http://" + silentServer(t) + "/stalled.git"
	f := failed(t, runJob(t, w, chunkSpec(url, strings.Repeat("a", 40), "true")))
	want := "fetching the source from " + url + " made no progress for 500ms and was stopped as stalled"
	if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || f.Reason != want {
		t.Errorf("failure %v %q; want a setup failure %q", f.Kind, f.Reason, want)
	}
	waitGone(t, url)
}

func TestAnInputMissingFromTheCacheIsReportedByItsCacheKey(t *testing.T) {
	w := newTestRunner(t, sandbox.None, func(c *Config) { c.Cache = dialCache(t, startCache(t)) })
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	spec := chunkSpec(repo, commit, "true")
	evicted := strings.Repeat("e", 64)
	spec.Staging = []string{evicted}
	f := failed(t, runJob(t, w, spec))
	if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || len(f.MissingCacheKeys) != 1 || f.MissingCacheKeys[0] != evicted ||
		!strings.Contains(f.Reason, "no longer holds "+evicted) {
		t.Errorf("failure %v %q missing %v; want a setup failure naming the missing input", f.Kind, f.Reason, f.MissingCacheKeys)
	}
}

func TestSourceDateEpochIsTheSourceCommitsDate(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	want := gittest.Run(t, repo, "log", "-1", "--format=%ct", commit)
	j := runJob(t, w, chunkSpec(repo, commit, `mkdir -p "$DESTDIR/usr" && echo "$SOURCE_DATE_EPOCH" > "$DESTDIR/usr/epoch"`))
	if j.manifest == nil {
		t.Fatalf("job failed: %v", j.failure)
	}
	var artifact *pb.ManifestFile
	for _, f := range j.manifest.Files {
		if f.Name == "hello-bins" {
			artifact = f
		}
	}
	if got := readTar(t, w, artifact.Digest)["usr/epoch"]; got != want+"\n" || want == "0" {
		t.Errorf("SOURCE_DATE_EPOCH was %q, want the commit's date %s", got, want)
	}
	if got := strconv.FormatInt(j.manifest.GetSourceDate().GetSeconds(), 10); got != want {
		t.Errorf("the manifest's source date is %s, want the commit's date %s", got, want)
	}
}
