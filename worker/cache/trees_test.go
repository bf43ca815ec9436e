package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"distbuild/digest"
)

// fillWith returns a fill that writes one file of size bytes into its
// tree and counts its calls.
func fillWith(size int, calls *int) func(string) error {
	return func(dir string) error {
		*calls++
		return os.WriteFile(filepath.Join(dir, "f"), bytes.Repeat([]byte("x"), size), 0o644)
	}
}

func TestTreesAreUnpackedOnceAndKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	c := testLocal(t, dir, 0, &fakeBackend{})
	d := digest.OfBytes([]byte("artifact"))
	var calls int
	var wg sync.WaitGroup
	roots := make([]string, 4)
	for i := range roots {
		wg.Go(func() {
			root, release, err := c.Tree(context.Background(), d, "plain", fillWith(100, &calls))
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
			roots[i] = root
		})
	}
	wg.Wait()
	if calls != 1 || roots[0] == "" || roots[0] != roots[3] {
		t.Fatalf("four concurrent uses unpacked %d times into %v; want once, into one tree", calls, roots)
	}
	if _, err := os.Stat(filepath.Join(roots[0], "f")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Tree(context.Background(), d, "plain-setuid", fillWith(100, &calls)); err != nil || calls != 2 {
		t.Errorf("another variant: %v, %d unpackings; want one of its own", err, calls)
	}
	// A crash in the middle of an unpacking leaves a temporary tree.
	if err := os.MkdirAll(filepath.Join(dir, "trees", ".unpacking-123", "root"), 0o755); err != nil {
		t.Fatal(err)
	}

	c = testLocal(t, dir, 0, &fakeBackend{})
	if _, _, err := c.Tree(context.Background(), d, "plain", fillWith(100, &calls)); err != nil || calls != 2 {
		t.Errorf("after a restart: %v, %d unpackings; want the kept tree", err, calls)
	}
	if _, err := os.Stat(filepath.Join(dir, "trees", ".unpacking-123")); !os.IsNotExist(err) {
		t.Errorf("a partial tree survived the restart: %v", err)
	}

	// Trees written before a reboot may have lost data: not trusted.
	info := filepath.Join(filepath.Dir(roots[0]), "info")
	body, _ := os.ReadFile(info)
	if err := os.WriteFile(info, []byte(strings.Replace(string(body), bootID(), "an-earlier-boot", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c = testLocal(t, dir, 0, &fakeBackend{})
	if _, _, err := c.Tree(context.Background(), d, "plain", fillWith(100, &calls)); err != nil || calls != 3 {
		t.Errorf("after a reboot: %v, %d unpackings; want the tree unpacked again", err, calls)
	}
}

func TestAFailedUnpackingKeepsNothingAndSaysWhy(t *testing.T) {
	dir := t.TempDir()
	c := testLocal(t, dir, 0, &fakeBackend{})
	missing := errors.New("blob not found")
	_, _, err := c.Tree(context.Background(), digest.OfBytes([]byte("a")), "plain", func(dir string) error {
		os.WriteFile(filepath.Join(dir, "half"), nil, 0o644)
		return missing
	})
	if !errors.Is(err, missing) {
		t.Errorf("got %v, want fill's error", err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "trees")); len(left) != 0 || len(c.trees) != 0 || c.used != 0 {
		t.Errorf("a failed unpacking left %v on disk, %d trees, %d bytes", left, len(c.trees), c.used)
	}
}

func TestTreesAreEvictedWithBlobsLeastRecentlyUsedFirstButNotWhileHeld(t *testing.T) {
	var dl fakeBackend
	c := testLocal(t, t.TempDir(), 1<<30, &dl)
	var calls int
	tree := func(name string) (string, func()) {
		root, release, err := c.Tree(context.Background(), digest.OfBytes([]byte(name)), "plain", fillWith(12<<10, &calls))
		if err != nil {
			t.Fatal(err)
		}
		return root, release
	}
	held, _ := tree("held") // never released
	// Room for three trees (as big on disk as the file system makes
	// them), not for a blob more.
	c.limit = 3*c.used + 6<<10
	old, release := tree("old")
	release()
	recent, release := tree("recent")
	release()
	blob := dl.blob(t, string(bytes.Repeat([]byte("b"), 12<<10)))
	dl.get(t, c, blob) // over the limit: the least recently used unheld entry goes
	for _, tc := range []struct {
		root string
		want bool
	}{{held, true}, {old, false}, {recent, true}} {
		if _, err := os.Stat(tc.root); (err == nil) != tc.want {
			t.Errorf("%s: present %v, want %v", tc.root, err == nil, tc.want)
		}
	}
	if !present(c, blob) {
		t.Error("the newest blob was evicted")
	}
	if s := c.Stats(); s.Trees != 2 || s.Blobs != 1 || s.Evictions != 1 {
		t.Errorf("stats %+v; want 2 trees, 1 blob, 1 eviction", s)
	}
}
