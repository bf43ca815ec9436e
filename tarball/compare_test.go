package tarball

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// packOne packs a whole tree as one artifact and opens it.
func packOne(t *testing.T, tree string) *os.File {
	t.Helper()
	arts := pack(t, tree, func(string) (string, bool) { return "all", true })
	f, err := os.Open(arts[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestCompareFindsNoDifferenceBetweenTheSameTreeBuiltTwice(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	makeTree(t, a, sampleTree)
	reversed := slices.Clone(sampleTree)
	slices.Reverse(reversed)
	makeTree(t, b, reversed)
	touchAll(t, b)
	diffs, err := Compare(packOne(t, a), packOne(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 0 {
		t.Errorf("the same files, written in another order at another time, differ: %v", diffs)
	}
}

func TestCompareNamesEachDifferingPathAndWhatDiffers(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	makeTree(t, a, sampleTree)
	makeTree(t, b, sampleTree)
	for _, change := range []func() error{
		func() error {
			return os.WriteFile(filepath.Join(b, "usr/include/zlib.h"), []byte("built at 12:00"), 0o644)
		},
		func() error { return os.Chmod(filepath.Join(b, "usr/share/doc/zlib/README"), 0o644) },
		func() error { return os.Remove(filepath.Join(b, "usr/lib/libz.so")) },
		func() error { return os.Symlink("/usr/lib/libz.so.1.2", filepath.Join(b, "usr/lib/libz.so")) },
		func() error { return os.WriteFile(filepath.Join(b, "usr/share/random-seed"), []byte("4"), 0o644) },
		func() error { return os.Remove(filepath.Join(b, "etc/a/b")) },
	} {
		if err := change(); err != nil {
			t.Fatal(err)
		}
	}
	diffs, err := Compare(packOne(t, a), packOne(t, b))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range diffs {
		got = append(got, d.Path+": "+d.What)
	}
	want := []string{
		"etc/a/b: " + OnlyCached,
		"usr/include/zlib.h: content",
		"usr/lib/libz.so: link target",
		"usr/share/doc/zlib/README: mode",
		"usr/share/random-seed: " + OnlyRebuilt,
	}
	if !slices.Equal(got, want) {
		t.Errorf("differences:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range diffs {
		if d.What == "mode" && (d.Cached != "0600" || d.Rebuilt != "0644") {
			t.Errorf("mode difference says %s -> %s; want 0600 -> 0644", d.Cached, d.Rebuilt)
		}
		if d.What == "content" && (!strings.HasPrefix(d.Cached, "sha256:") || d.Cached == d.Rebuilt) {
			t.Errorf("content difference says %q -> %q; want two different digests", d.Cached, d.Rebuilt)
		}
	}
}

func TestCompareRefusesWhatIsNotATarball(t *testing.T) {
	a := t.TempDir()
	makeTree(t, a, sampleTree)
	_, err := Compare(packOne(t, a), strings.NewReader(strings.Repeat("not a tarball ", 100)))
	if err == nil || !strings.Contains(err.Error(), "rebuilt artifact") {
		t.Errorf("comparing with garbage: %v; want an error about the rebuilt artifact", err)
	}
}
