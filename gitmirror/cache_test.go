package gitmirror

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestEnsureClonesOnceAndFetchesOnlyMissingCommits(t *testing.T) {
	f := newDefsFixture(t)
	c, log := newTestCache(t)
	check := func(step string, clones, fetches int) {
		t.Helper()
		if got := log.count("cloned mirror"); got != clones {
			t.Errorf("after %s: %d clones, want %d", step, got, clones)
		}
		if got := log.count("fetched"); got != fetches {
			t.Errorf("after %s: %d fetches, want %d", step, got, fetches)
		}
	}

	ensure(t, c, f.dir, f.c1)
	check("first Ensure", 1, 0)
	ensure(t, c, f.dir, f.c1)
	ensure(t, c, f.dir, f.c2)
	check("Ensure of mirrored commits", 1, 0)

	f.write("late.txt", "pushed later\n", 0o644)
	c3 := f.commit("third")
	r := ensure(t, c, f.dir, c3)
	check("Ensure of a new upstream commit", 1, 1)
	if !r.hasCommit(testContext(t), c3) {
		t.Errorf("mirror lacks %s after Ensure returned it", c3)
	}
	ensure(t, c, f.dir, c3)
	check("second Ensure of the new commit", 1, 1)
}

func TestEnsureFetchesCommitNoRefNames(t *testing.T) {
	f := newDefsFixture(t)
	c, log := newTestCache(t)
	ensure(t, c, f.dir, f.c1)

	// A commit on no branch or tag, as left behind by a force-push.
	orphan := gitIn(t, f.dir, "commit-tree", "-p", f.c2, "-m", "orphan", f.c2+"^{tree}")
	r := ensure(t, c, f.dir, orphan)
	if got := log.count("fetched"); got != 2 {
		t.Errorf("%d fetches, want 2 (all refs, then the commit by id)", got)
	}
	// Nothing in the mirror names the commit either; a work tree still
	// reaches it through the mirror's objects.
	dir := filepath.Join(t.TempDir(), "src")
	if err := r.Checkout(testContext(t), orphan, dir, nil); err != nil {
		t.Fatal(err)
	}
	if head := gitIn(t, dir, "rev-parse", "HEAD"); head != orphan {
		t.Errorf("checkout HEAD = %s, want %s", head, orphan)
	}
}

func TestEnsureUnknownCommitErrorsAndKeepsMirror(t *testing.T) {
	f := newDefsFixture(t)
	c, log := newTestCache(t)
	unknown := strings.Repeat("0123456789", 4)

	_, err := c.Ensure(testContext(t), f.dir, unknown)
	if err == nil || !strings.Contains(err.Error(), unknown) || !strings.Contains(err.Error(), f.dir) {
		t.Fatalf("Ensure of an unknown commit: error %v, want one naming the commit and the URL", err)
	}
	ensure(t, c, f.dir, f.c1)
	if got := log.count("cloned mirror"); got != 1 {
		t.Errorf("%d clones, want 1: the mirror made before the error should be reused", got)
	}
}

func TestEnsureUnreachableURLLeavesNoMirror(t *testing.T) {
	c, _ := newTestCache(t)
	url := filepath.Join(t.TempDir(), "no-such-repo")

	_, err := c.Ensure(testContext(t), url, strings.Repeat("a", 40))
	if err == nil || !strings.HasPrefix(err.Error(), "cloning "+url+": fatal:") {
		t.Fatalf("error %v, want \"cloning %s: fatal: ...\" with git's message", err, url)
	}
	for _, p := range listDir(t, c.dir)[1:] {
		if !strings.HasSuffix(p, ".lock") {
			t.Errorf("failed clone left %s behind", p)
		}
	}
}

func TestEnsureConcurrentCallsCloneOnce(t *testing.T) {
	f := newDefsFixture(t)
	c, log := newTestCache(t)
	url := "file://" + f.dir
	ctx := testContext(t)

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = c.Ensure(ctx, url, f.c2) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Ensure #%d: %v", i, err)
		}
	}
	if got := log.count("cloned mirror"); got != 1 {
		t.Errorf("%d clones, want 1", got)
	}
	if got := log.count("fetched"); got != 0 {
		t.Errorf("%d fetches, want 0", got)
	}
}

func TestEnsureWaitsForAnotherProcessHoldingTheLock(t *testing.T) {
	f := newDefsFixture(t)
	c, log := newTestCache(t)

	// An flock taken through a separate open file, as another process would.
	lockFile, err := os.OpenFile(c.path(f.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lockFile.Close()
	if err := syscall.Flock(int(lockFile.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Ensure(ctx, f.dir, f.c1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ensure while another process holds the lock: error %v, want the deadline to pass", err)
	}
	if log.count("cloned mirror") != 0 {
		t.Fatal("cloned while another process held the lock")
	}

	lockFile.Close()
	ensure(t, c, f.dir, f.c1)
	if got := log.count("cloned mirror"); got != 1 {
		t.Errorf("%d clones after the lock was released, want 1", got)
	}
}

func TestEnsureReplacesCloneLeftByACrash(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	leftover := c.path(f.dir, ".tmp")
	if err := os.MkdirAll(filepath.Join(leftover, "objects"), 0o755); err != nil {
		t.Fatal(err)
	}

	r := ensure(t, c, f.dir, f.c1)
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover temporary clone still there (stat: %v)", err)
	}
	if _, err := r.FS(testContext(t), f.c1); err != nil {
		t.Errorf("mirror cloned over a leftover is unusable: %v", err)
	}
}

func TestMirrorNameCannotLeaveTheCacheDirectory(t *testing.T) {
	urls := []string{
		"https://git.example.com/baserock/zlib.git",
		"https://git.example.com/baserock/zlib",
		"../../../etc",
		"..",
		"/",
		"https://x/y/../../../../z",
		"ssh://host/repo/..",
		"https://host/.hidden.",
		"file:///tmp/a b/c$(rm -rf x)",
	}
	seen := make(map[string]string)
	for _, url := range urls {
		name := mirrorName(url)
		dir := "/cache"
		if filepath.Dir(filepath.Join(dir, name)) != dir || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			t.Errorf("mirrorName(%q) = %q, want a plain name within the cache directory", url, name)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("mirrorName(%q) = mirrorName(%q) = %q", url, other, name)
		}
		seen[name] = url
	}
	if name := mirrorName(urls[0]); !strings.HasSuffix(name, "-zlib") {
		t.Errorf("mirrorName(%q) = %q, want it to end in -zlib for people reading the directory", urls[0], name)
	}
}

func TestEndingTheContextKillsGitAndItsChildren(t *testing.T) {
	// A transport that never answers: git runs this as its ssh, which
	// records its pid and sleeps.
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := filepath.Join(t.TempDir(), "stalled-ssh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho $$ > "+pidFile+"\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_SSH_COMMAND", script)
	t.Setenv("GIT_SSH_VARIANT", "simple")
	c, _ := newTestCache(t)

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Ensure(ctx, "ssh://git.invalid/repo.git", strings.Repeat("a", 40))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline to pass", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Ensure returned %v after its deadline", elapsed)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the stalled transport never ran: %v", err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // gone, or dead and waiting to be reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("transport process %s still running after Ensure returned", strings.TrimSpace(string(pid)))
		}
	}
	if paths := listDir(t, c.dir)[1:]; len(paths) != 1 || !strings.HasSuffix(paths[0], ".lock") {
		t.Errorf("cache directory holds %q, want only the lock file", paths)
	}
}

func TestCommitTimeIsTheCommittersDate(t *testing.T) {
	u := newUpstream(t, "dated")
	u.write("f", "x\n", 0o644)
	gitIn(t, u.dir, "add", "f")
	gitIn(t, u.dir, "-c", "user.name=T", "commit", "-q", "-m", "dated", "--date=2001-02-03T04:05:06Z")
	cmd := exec.Command("git", "commit", "-q", "--amend", "--no-edit")
	cmd.Dir = u.dir
	cmd.Env = append(gitEnv(), "GIT_COMMITTER_NAME=C", "GIT_COMMITTER_EMAIL=c@example.com", "GIT_COMMITTER_DATE=2020-09-13T12:26:40Z")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	commit := gitIn(t, u.dir, "rev-parse", "HEAD")
	c, _ := newTestCache(t)
	r := ensure(t, c, u.dir, commit)
	got, err := r.CommitTime(testContext(t), commit)
	if want := time.Date(2020, 9, 13, 12, 26, 40, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("CommitTime = %v, %v; want the committer's %v, not the author's", got, err, want)
	}
	if _, err := r.CommitTime(testContext(t), strings.Repeat("0", 40)); err == nil {
		t.Error("CommitTime of a commit the mirror lacks succeeded")
	}
}
