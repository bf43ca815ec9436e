package gitmirror

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveRefFindsBranchesAndTags(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	if f.annotated == f.c1 {
		t.Fatal("fixture: v1.0 should be an annotated tag object, not the commit itself")
	}
	for _, tc := range []struct{ ref, want string }{
		{"master", f.c2},
		{"feature", f.c1},
		{"light", f.c1},          // lightweight tag
		{"v1.0", f.c1},           // annotated tag, peeled to its commit
		{"refs/tags/v1.0", f.c1}, // full name of an annotated tag
		{"refs/heads/feature", f.c1},
		{"HEAD", f.c2},
		{"dup", f.c1}, // a branch wins over a tag of the same name
		{f.c1, f.c1},  // a commit id needs no lookup
	} {
		got, err := c.ResolveRef(testContext(t), f.dir, tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("ResolveRef(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
}

func TestResolveRefUnknownRefErrors(t *testing.T) {
	f := newDefsFixture(t)
	c, _ := newTestCache(t)
	// "wip" is only the tail of branch team/wip, which must not match.
	for _, ref := range []string{"no-such-branch", "wip"} {
		got, err := c.ResolveRef(testContext(t), f.dir, ref)
		want := `resolving "` + ref + `" in ` + f.dir + ": no branch or tag of that name"
		if err == nil || err.Error() != want {
			t.Errorf("ResolveRef(%q) = %q, %v; want error %q", ref, got, err, want)
		}
	}
}

func TestResolveRefUnreachableURLErrors(t *testing.T) {
	c, _ := newTestCache(t)
	url := filepath.Join(t.TempDir(), "missing")
	_, err := c.ResolveRef(testContext(t), url, "master")
	if err == nil || !strings.HasPrefix(err.Error(), `resolving "master" in `+url+": fatal:") {
		t.Errorf("error %v, want one naming the ref and URL with git's message", err)
	}
}
