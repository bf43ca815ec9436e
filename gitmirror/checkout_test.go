package gitmirror

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readFile returns the content of a checked-out file, or "" if it is absent.
func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(data)
}

func TestCheckoutWritesTheExactCommit(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	r := ensure(t, c, f.dir, f.c2) // the mirror has both commits; ask for the older
	dir := filepath.Join(t.TempDir(), "build", "src")

	if err := r.Checkout(testContext(t), f.c1, dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "strata/core.morph")); !strings.HasSuffix(got, "# v1\n") {
		t.Errorf("strata/core.morph = %q, want the first commit's content", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "strata/new.morph")); !os.IsNotExist(err) {
		t.Errorf("file from the later commit present (stat: %v)", err)
	}
	if head := gitIn(t, dir, "rev-parse", "HEAD"); head != f.c1 {
		t.Errorf("HEAD = %s, want %s", head, f.c1)
	}
	if desc := gitIn(t, dir, "describe"); desc != "v1.0" {
		t.Errorf("git describe = %q, want v1.0: tags should be in the work tree", desc)
	}
	if info, err := os.Stat(filepath.Join(dir, "scripts/run.sh")); err != nil || info.Mode().Perm()&0o100 == 0 {
		t.Errorf("scripts/run.sh = %v, %v; want it executable", info, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "core-link")); err != nil || target != "strata/core.morph" {
		t.Errorf("core-link -> %q, %v; want a symbolic link to strata/core.morph", target, err)
	}
	if status := gitIn(t, dir, "status", "--porcelain"); status != "" {
		t.Errorf("git status in the checkout:\n%s\nwant a clean work tree", status)
	}
}

func TestCheckoutIntoExistingEmptyDirectory(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	dir := t.TempDir()
	if err := ensure(t, c, f.dir, f.c2).Checkout(testContext(t), f.c2, dir, nil); err != nil {
		t.Fatal(err)
	}
	if head := gitIn(t, dir, "rev-parse", "HEAD"); head != f.c2 {
		t.Errorf("HEAD = %s, want %s", head, f.c2)
	}
}

func TestCheckoutPutsSubmoduleAtItsGitlinkCommit(t *testing.T) {
	chunk := newChunkFixture(t)
	c, _ := newTestCache(t)
	dir := filepath.Join(t.TempDir(), "src")
	subs := []Submodule{{Path: "third_party/lib", URL: chunk.lib.dir}}

	if err := ensure(t, c, chunk.chunk.dir, chunk.commit).Checkout(testContext(t), chunk.commit, dir, subs); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "third_party/lib")
	if got := readFile(t, filepath.Join(sub, "lib.c")); got != "one\n" {
		t.Errorf("submodule lib.c = %q, want %q from the gitlink commit (not the library's newer one)", got, "one\n")
	}
	if head := gitIn(t, sub, "rev-parse", "HEAD"); head != chunk.lib1 {
		t.Errorf("submodule HEAD = %s, want %s", head, chunk.lib1)
	}
	if head := gitIn(t, dir, "rev-parse", "HEAD"); head != chunk.commit {
		t.Errorf("HEAD = %s, want %s", head, chunk.commit)
	}
	if status := gitIn(t, dir, "status", "--porcelain"); status != "" {
		t.Errorf("git status in the checkout:\n%s\nwant a clean work tree", status)
	}
}

func TestCheckoutRefusesNonEmptyDirectory(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	r := ensure(t, c, f.dir, f.c1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, dir)

	err := r.Checkout(testContext(t), f.c1, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("error %v, want one saying the directory is not empty", err)
	}
	if after := listDir(t, dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("directory changed from %q to %q", before, after)
	}
}

func TestCheckoutBadSubmoduleLeavesNothing(t *testing.T) {
	chunk := newChunkFixture(t)
	c, _ := newTestCache(t)
	r := ensure(t, c, chunk.chunk.dir, chunk.commit)
	for _, tc := range []struct {
		sub  Submodule
		want string
	}{
		{Submodule{Path: "no/such/path", URL: chunk.lib.dir}, "submodule no/such/path: no such path"},
		{Submodule{Path: "main.c", URL: chunk.lib.dir}, "submodule main.c: is a blob, not a submodule"},
		{Submodule{Path: "third_party", URL: chunk.lib.dir}, "submodule third_party: is a tree, not a submodule"},
		{Submodule{Path: "third_party/lib", URL: filepath.Join(t.TempDir(), "gone")}, "submodule third_party/lib: cloning "},
	} {
		dir := filepath.Join(t.TempDir(), "src")
		err := r.Checkout(testContext(t), chunk.commit, dir, []Submodule{tc.sub})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Checkout with submodule %+v: error %v, want it to start %q", tc.sub, err, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("Checkout with submodule %+v created %s (stat: %v)", tc.sub, dir, err)
		}
	}
}

func TestCheckoutOfCommitNotInMirrorErrors(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	r := ensure(t, c, f.dir, f.c1)
	unknown := strings.Repeat("cd", 20)
	dir := filepath.Join(t.TempDir(), "src")
	if err := r.Checkout(testContext(t), unknown, dir, nil); err == nil || !strings.Contains(err.Error(), unknown) {
		t.Errorf("error %v, want one naming %s", err, unknown)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("failed Checkout created %s (stat: %v)", dir, err)
	}
}

func TestFailedCheckoutIsRemoved(t *testing.T) {
	made := filepath.Join(t.TempDir(), "made")
	given := t.TempDir()
	for _, dir := range []string{made, given} {
		if err := os.MkdirAll(filepath.Join(dir, ".git", "objects"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "half-written"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	removeCheckout(made, false)
	if _, err := os.Stat(made); !os.IsNotExist(err) {
		t.Errorf("directory Checkout made is still there (stat: %v)", err)
	}
	removeCheckout(given, true)
	if entries, err := os.ReadDir(given); err != nil || len(entries) != 0 {
		t.Errorf("directory the caller gave holds %v, %v; want it kept and empty", entries, err)
	}
}
