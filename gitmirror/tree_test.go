package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// openTree mirrors u's commit and returns its Tree, closed when the test ends.
func openTree(t testing.TB, c *Cache, u *upstream, commit string) *Tree {
	t.Helper()
	tree, err := ensure(t, c, u.dir, commit).FS(testContext(t), commit)
	if err != nil {
		t.Fatalf("FS(%s): %v", commit, err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree
}

func TestFSPassesFSTest(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	for _, commit := range []string{f.c1, f.c2} {
		if err := fstest.TestFS(openTree(t, c, f.upstream, commit), f.firstFiles...); err != nil {
			t.Errorf("commit %s: %v", commit, err)
		}
	}
	chunk := newChunkFixture(t)
	if err := fstest.TestFS(openTree(t, c, chunk.chunk, chunk.commit), "main.c", ".gitmodules", "third_party/lib"); err != nil {
		t.Errorf("tree with a submodule: %v", err)
	}
}

func TestFSReadsEachCommitsOwnContent(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	old, cur := openTree(t, c, f.upstream, f.c1), openTree(t, c, f.upstream, f.c2)

	for _, tc := range []struct {
		tree *Tree
		want string
	}{{old, "# v1\n"}, {cur, "# v2\n"}} {
		data, err := fs.ReadFile(tc.tree, "strata/core.morph")
		if err != nil || !strings.HasSuffix(string(data), tc.want) {
			t.Errorf("strata/core.morph = %q, %v; want it to end %q", data, err, tc.want)
		}
	}
	if _, err := fs.ReadFile(old, "strata/new.morph"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file added by the later commit, read at the earlier: error %v, want fs.ErrNotExist", err)
	}
	if data, err := fs.ReadFile(cur, "strata/new.morph"); err != nil || string(data) != "name: new\n" {
		t.Errorf("strata/new.morph = %q, %v", data, err)
	}
	matches, err := fs.Glob(cur, "strata/*.morph")
	if want := []string{"strata/core.morph", "strata/new.morph"}; err != nil || !slices.Equal(matches, want) {
		t.Errorf("Glob = %q, %v; want %q", matches, err, want)
	}
}

func TestFSMissingPathIsNotExist(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	tree := openTree(t, c, f.upstream, f.c1)
	for _, name := range []string{"nope", "strata/nope.morph", "VERSION/child", "nope/child"} {
		if _, err := tree.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q): error %v, want fs.ErrNotExist", name, err)
		}
		if _, err := tree.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q): error %v, want fs.ErrNotExist", name, err)
		}
	}
}

func TestFSOfCommitNotInMirrorErrors(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	r := ensure(t, c, f.dir, f.c1)
	unknown := strings.Repeat("ab", 20)
	if _, err := r.FS(testContext(t), unknown); err == nil || !strings.Contains(err.Error(), unknown) {
		t.Errorf("FS of a commit the mirror lacks: error %v, want one naming the commit", err)
	}
}

func TestFSKeepsGitModes(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	tree := openTree(t, c, f.upstream, f.c1)
	for name, want := range map[string]fs.FileMode{
		"VERSION":        0o644,
		"scripts/run.sh": 0o755,
		"strata":         fs.ModeDir | 0o755,
	} {
		if info, err := tree.Stat(name); err != nil || info.Mode() != want {
			t.Errorf("Stat(%q) mode = %v, %v; want %v", name, info.Mode(), err, want)
		}
	}
	if info, err := tree.Stat("VERSION"); err != nil || info.Size() != int64(len("version: 6\n")) {
		t.Errorf("Stat(VERSION) size = %d, %v; want %d", info.Size(), err, len("version: 6\n"))
	}
}

func TestFSFollowsSymlinksInsideTheTree(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	tree := openTree(t, c, f.upstream, f.c1)

	if info, err := tree.Lstat("core-link"); err != nil || info.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat(core-link) = %v, %v; want a symbolic link", info, err)
	}
	if target, err := tree.ReadLink("core-link"); err != nil || target != "strata/core.morph" {
		t.Errorf("ReadLink(core-link) = %q, %v; want strata/core.morph", target, err)
	}
	linked, err := tree.ReadFile("core-link")
	direct, _ := tree.ReadFile("strata/core.morph")
	if err != nil || string(linked) != string(direct) {
		t.Errorf("ReadFile(core-link) = %q, %v; want the content of strata/core.morph, %q", linked, err, direct)
	}
	if data, err := tree.ReadFile("strata-link/core.morph"); err != nil || string(data) != string(direct) {
		t.Errorf("ReadFile through a link to a directory = %q, %v", data, err)
	}
	if info, err := tree.Stat("strata-link"); err != nil || !info.IsDir() || info.Name() != "strata-link" {
		t.Errorf("Stat(strata-link) = %v, %v; want a directory named strata-link", info, err)
	}
	if _, err := tree.ReadLink("VERSION"); err == nil {
		t.Error("ReadLink of a regular file succeeded")
	}
}

func TestFSLinksLeavingTheTreeDoNotResolve(t *testing.T) {
	u := newUpstream(t, "links")
	u.write("dir/file", "inside\n", 0o644)
	u.symlink("up", "../outside")
	u.symlink("dir/up-and-back", "../dir/file")
	u.symlink("dir/too-far", "../../dir/file")
	u.symlink("absolute", "/etc/passwd")
	u.symlink("loop1", "loop2")
	u.symlink("loop2", "loop1")
	u.symlink("dangling", "nothing")
	commit := u.commit("links")
	c, _ := newTestCache(t)
	tree := openTree(t, c, u, commit)

	if data, err := tree.ReadFile("dir/up-and-back"); err != nil || string(data) != "inside\n" {
		t.Errorf("ReadFile(dir/up-and-back) = %q, %v; want the file it leads to", data, err)
	}
	for _, name := range []string{"up", "dir/too-far", "absolute", "loop1", "dangling"} {
		if _, err := tree.ReadFile(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%q): error %v, want fs.ErrNotExist", name, err)
		}
		if _, err := tree.Lstat(name); err != nil {
			t.Errorf("Lstat(%q): %v; the link itself exists", name, err)
		}
	}
}

func TestFSShowsSubmoduleAsEmptyDirectory(t *testing.T) {
	chunk := newChunkFixture(t)
	c, _ := newTestCache(t)
	tree := openTree(t, c, chunk.chunk, chunk.commit)
	info, err := tree.Stat("third_party/lib")
	if err != nil || !info.IsDir() {
		t.Fatalf("Stat(third_party/lib) = %v, %v; want a directory", info, err)
	}
	if entries, err := tree.ReadDir("third_party/lib"); err != nil || len(entries) != 0 {
		t.Errorf("ReadDir(third_party/lib) = %v, %v; want no entries", entries, err)
	}
}

func TestFSConcurrentReads(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	tree := openTree(t, c, f.upstream, f.c2)
	want, err := tree.ReadFile("strata/core.morph")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if got, err := tree.ReadFile("strata/core.morph"); err != nil || string(got) != string(want) {
					errs <- fmt.Errorf("ReadFile = %q, %v; want %q", got, err, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFSReadAfterCloseFails(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	tree := openTree(t, c, f.upstream, f.c1)
	if err := tree.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.ReadFile("VERSION"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadFile after Close: error %v, want fs.ErrClosed", err)
	}
	if err := tree.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// definitionsSized commits a tree shaped like a real definitions repository:
// 800 small morphs over 40 directories.
func definitionsSized(t testing.TB) (*upstream, string) {
	u := newUpstream(t, "big-definitions")
	for i := range 800 {
		name := filepath.Join(u.dir, "strata", fmt.Sprintf("s%02d", i%40), fmt.Sprintf("chunk%03d.morph", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, fmt.Appendf(nil, "name: chunk%03d\nkind: chunk\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn(t, u.dir, "add", "-A")
	return u, u.commit("big")
}

// loadAll reads every file of commit through a fresh Tree, as the
// definitions loader does, and returns how many there were.
func loadAll(ctx context.Context, r *Repo, commit string) (int, error) {
	tree, err := r.FS(ctx, commit)
	if err != nil {
		return 0, err
	}
	defer tree.Close()
	n := 0
	err = fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		_, err = fs.ReadFile(tree, p)
		return err
	})
	return n, err
}

func BenchmarkFSLoadDefinitions(b *testing.B) {
	u, commit := definitionsSized(b)
	c, _ := newTestCache(b)
	r := ensure(b, c, u.dir, commit)
	for b.Loop() {
		if n, err := loadAll(b.Context(), r, commit); err != nil || n != 800 {
			b.Fatalf("read %d files, %v; want 800", n, err)
		}
	}
}
