package gitmirror

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	f := newDefsFixture(t)
	c, log := newTestCache(t)
	r := ensure(t, c, f.dir, f.c1)
	target := filepath.Join(t.TempDir(), "src")
	sub := func(p, url string) []Submodule { return []Submodule{{Path: p, URL: url}} }
	before := listDir(t, c.dir)

	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"short commit", func() error { _, err := c.Ensure(t.Context(), f.dir, f.c1[:12]); return err }, "invalid commit"},
		{"upper-case commit", func() error { _, err := c.Ensure(t.Context(), f.dir, strings.ToUpper(f.c1)); return err }, "invalid commit"},
		{"option as commit", func() error { _, err := c.Ensure(t.Context(), f.dir, "-rf"); return err }, "invalid commit"},
		{"commit with newline", func() error { _, err := c.Ensure(t.Context(), f.dir, f.c1[:39]+"\n"); return err }, "invalid commit"},
		{"empty URL", func() error { _, err := c.Ensure(t.Context(), "", f.c1); return err }, "empty repository URL"},
		{"option as URL", func() error { _, err := c.Ensure(t.Context(), "--upload-pack=touch /tmp/x", f.c1); return err }, "starts with '-'"},
		{"URL with newline", func() error { _, err := c.Ensure(t.Context(), f.dir+"\nx", f.c1); return err }, "control character"},
		{"option as ref", func() error { _, err := c.ResolveRef(t.Context(), f.dir, "--upload-pack=x"); return err }, "starts with '-'"},
		{"empty ref", func() error { _, err := c.ResolveRef(t.Context(), f.dir, ""); return err }, "empty ref"},
		{"revision expression as ref", func() error { _, err := c.ResolveRef(t.Context(), f.dir, "master~1"); return err }, "not a branch or tag name"},
		{"peeled ref", func() error { _, err := c.ResolveRef(t.Context(), f.dir, "v1.0^{}"); return err }, "not a branch or tag name"},
		{"ref range", func() error { _, err := c.ResolveRef(t.Context(), f.dir, "a..b"); return err }, "not a branch or tag name"},
		{"option as ResolveRef URL", func() error { _, err := c.ResolveRef(t.Context(), "-u", "master"); return err }, "starts with '-'"},
		{"FS of bad commit", func() error { _, err := r.FS(t.Context(), "HEAD"); return err }, "invalid commit"},
		{"Checkout of bad commit", func() error { return r.Checkout(t.Context(), "master", target, nil) }, "invalid commit"},
		{"Checkout into no directory", func() error { return r.Checkout(t.Context(), f.c1, "", nil) }, "checkout directory not set"},
		{"submodule climbing out", func() error { return r.Checkout(t.Context(), f.c1, target, sub("../x", f.dir)) }, "invalid submodule path"},
		{"absolute submodule", func() error { return r.Checkout(t.Context(), f.c1, target, sub("/etc", f.dir)) }, "invalid submodule path"},
		{"submodule in .git", func() error { return r.Checkout(t.Context(), f.c1, target, sub(".GIT/hooks", f.dir)) }, "names a .git directory"},
		{"unclean submodule path", func() error { return r.Checkout(t.Context(), f.c1, target, sub("a/./b", f.dir)) }, "invalid submodule path"},
		{"option as submodule URL", func() error { return r.Checkout(t.Context(), f.c1, target, sub("a", "-x")) }, "submodule a: invalid repository URL"},
		{"submodule twice", func() error {
			return r.Checkout(t.Context(), f.c1, target, []Submodule{{"a", f.dir}, {"a", f.dir}})
		}, "submodule a listed twice"},
	} {
		if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if after := listDir(t, c.dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("cache directory changed from\n%s\nto\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	if paths := listDir(t, target); len(paths) != 0 {
		t.Errorf("checkout target created: %q", paths)
	}
	if got := log.count("cloned mirror") + log.count("fetched"); got != 1 {
		t.Errorf("%d clones and fetches, want only the first clone", got)
	}
}
