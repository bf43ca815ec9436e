package gitmirror

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestMain keeps the tests hermetic: neither the fixtures nor the code under
// test read the developer's ~/.gitconfig (commit signing, say).
func TestMain(m *testing.M) {
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Exit(m.Run())
}

// testTimeout bounds each test's git operations, so a hang fails the test.
const testTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// gitIn runs a fixture git command in dir and returns its trimmed output.
func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(gitEnv(),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s in %s: %v: %s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// upstream is a repository tests push commits to; its path is its URL.
type upstream struct {
	t   testing.TB
	dir string
}

func newUpstream(t testing.TB, name string) *upstream {
	dir := filepath.Join(t.TempDir(), name)
	gitIn(t, "", "init", "-q", "-b", "master", dir)
	return &upstream{t: t, dir: dir}
}

// write stages a file with content and permissions perm.
func (u *upstream) write(name, content string, perm os.FileMode) {
	u.t.Helper()
	p := filepath.Join(u.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		u.t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		u.t.Fatal(err)
	}
	gitIn(u.t, u.dir, "add", "--", name)
}

// symlink stages a symbolic link name -> target.
func (u *upstream) symlink(name, target string) {
	u.t.Helper()
	p := filepath.Join(u.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		u.t.Fatal(err)
	}
	gitIn(u.t, u.dir, "add", "--", name)
}

// gitlink stages a submodule entry at name recording commit.
func (u *upstream) gitlink(name, commit string) {
	u.t.Helper()
	gitIn(u.t, u.dir, "update-index", "--add", "--cacheinfo", "160000,"+commit+","+name)
}

// commit commits what is staged on the current branch and returns its id.
func (u *upstream) commit(msg string) string {
	u.t.Helper()
	gitIn(u.t, u.dir, "commit", "-q", "-m", msg)
	return gitIn(u.t, u.dir, "rev-parse", "HEAD")
}

// defsFixture is a definitions-like repository with two commits on master.
type defsFixture struct {
	*upstream
	c1, c2     string // master's first and second commits
	annotated  string // the tag object of v1.0, which points at c1
	firstFiles []string
}

// c1 has plain, executable and nested files, symlinks to a file and to a
// directory, and names that sort differently in git ("a/" after "a-b") and
// in io/fs. Branch feature, lightweight tag light and annotated tag v1.0
// point at c1; c2 changes strata/core.morph and adds strata/new.morph.
// Branch dup and tag dup both exist (at c1 and c2), and branch team/wip.
func newDefsFixture(t testing.TB) *defsFixture {
	u := newUpstream(t, "definitions")
	u.write("VERSION", "version: 6\n", 0o644)
	u.write("strata/core.morph", "name: core\nkind: stratum\n# v1\n", 0o644)
	u.write("systems/x.morph", "name: x\nkind: system\n", 0o644)
	u.write("scripts/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	u.write("a-b", "dash\n", 0o644)
	u.write("a/c", "nested\n", 0o644)
	u.symlink("core-link", "strata/core.morph")
	u.symlink("strata-link", "strata")
	c1 := u.commit("first")
	gitIn(t, u.dir, "branch", "feature")
	gitIn(t, u.dir, "branch", "dup")
	gitIn(t, u.dir, "branch", "team/wip")
	gitIn(t, u.dir, "tag", "light")
	gitIn(t, u.dir, "tag", "-a", "-m", "release", "v1.0")

	u.write("strata/core.morph", "name: core\nkind: stratum\n# v2\n", 0o644)
	u.write("strata/new.morph", "name: new\n", 0o644)
	c2 := u.commit("second")
	gitIn(t, u.dir, "tag", "dup")
	return &defsFixture{
		upstream:   u,
		c1:         c1,
		c2:         c2,
		annotated:  gitIn(t, u.dir, "rev-parse", "v1.0"),
		firstFiles: []string{"VERSION", "strata/core.morph", "systems/x.morph", "scripts/run.sh", "a-b", "a/c", "core-link", "strata-link"},
	}
}

// chunkFixture is a chunk repository with a submodule.
type chunkFixture struct {
	chunk, lib *upstream
	commit     string // the chunk's commit, annotated-tagged v2.0
	lib1, lib2 string // the library's commits; the gitlink records lib1
}

func newChunkFixture(t testing.TB) *chunkFixture {
	lib := newUpstream(t, "lib")
	lib.write("lib.c", "one\n", 0o644)
	lib1 := lib.commit("lib one")
	lib.write("lib.c", "two\n", 0o644)
	lib2 := lib.commit("lib two")

	chunk := newUpstream(t, "chunk")
	chunk.write("main.c", "int main(void) { return 0; }\n", 0o644)
	chunk.write(".gitmodules", fmt.Sprintf("[submodule \"lib\"]\n\tpath = third_party/lib\n\turl = %s\n", lib.dir), 0o644)
	chunk.gitlink("third_party/lib", lib1)
	commit := chunk.commit("chunk")
	gitIn(t, chunk.dir, "tag", "-a", "-m", "release", "v2.0")
	return &chunkFixture{chunk: chunk, lib: lib, commit: commit, lib1: lib1, lib2: lib2}
}

// logRecorder counts what the cache logs, which is how tests see whether it
// cloned or fetched.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Accept(_ string, _ hclog.Level, msg string, _ ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, msg)
}

func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// newTestCache returns a cache in a fresh directory and the record of its log.
func newTestCache(t testing.TB) (*Cache, *logRecorder) {
	t.Helper()
	logger := hclog.NewInterceptLogger(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Debug})
	rec := &logRecorder{}
	logger.RegisterSink(rec)
	c, err := New(filepath.Join(t.TempDir(), "mirrors"), logger)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// ensure is Ensure that fails the test on error.
func ensure(t testing.TB, c *Cache, url, commit string) *Repo {
	t.Helper()
	r, err := c.Ensure(testContext(t), url, commit)
	if err != nil {
		t.Fatalf("Ensure(%s, %s): %v", url, commit, err)
	}
	return r
}

// listDir returns every path under dir, to show that a call changed nothing.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return paths
}
