package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestABranchRefIsResolvedWhenTheBuildStarts makes one demo chunk's ref a
// branch of its repository, as real definitions often do: offline, graph
// says the ref needs pinning; build resolves it on the controller, builds
// that commit and records it in the build's history, where attach finds
// it again.
func TestABranchRefIsResolvedWhenTheBuildStarts(t *testing.T) {
	f := startFarm(t, "worker-1")
	const branch = "baserock/e2e/sum"
	upstream := filepath.Join(f.dir, "trove", "git", "upstream", "demo-sum.git")
	clone := filepath.Join(f.dir, "demo-sum")
	f.git(f.dir, "clone", "-q", upstream, clone)
	if err := os.WriteFile(filepath.Join(clone, "BRANCH"), []byte("built from a branch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.git(clone, "add", "BRANCH")
	f.git(clone, "commit", "-q", "-m", "a commit only the branch has")
	f.git(clone, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	commit := f.git(clone, "rev-parse", "HEAD")

	apps, err := os.ReadFile(filepath.Join(f.defs, "strata", "demo-apps.morph"))
	if err != nil {
		t.Fatal(err)
	}
	pinned := regexp.MustCompile(`(?m)(- name: demo-sum\n(?:  .*\n)*?  ref: )("?[0-9a-f]{40}"?)`).FindSubmatch(apps)
	if pinned == nil {
		t.Fatal("demo-sum's pinned ref not found in strata/demo-apps.morph")
	}
	f.change("strata/demo-apps.morph", string(pinned[0]), string(pinned[1])+branch)

	if r := f.initiator("graph", demoSystem); r.code != 1 || !strings.Contains(r.stderr, `chunk "demo-sum": ref "`+branch+`" is not a commit SHA`) || !strings.Contains(r.stderr, "pin it") {
		t.Errorf("graph offline: exit %d, stderr %q; want it to say the branch needs a pinned commit", r.code, r.stderr)
	}

	r := f.initiator("build", "--partial", "demo-sum", demoSystem)
	resolved := "demo-sum: ref " + branch + " is commit " + commit + "\n"
	if r.code != 0 || !strings.Contains(r.stdout, resolved) || r.started()["demo-sum"] == "" {
		t.Fatalf("build: exit %d, want success, demo-sum built and the line %q\nstdout:\n%s\nstderr:\n%s", r.code, resolved, r.stdout, r.stderr)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(r.stdout, "\n", 2)[0], "build "), " accepted")
	if a := f.initiator("attach", id); a.code != 0 || !strings.Contains(a.stdout, resolved) {
		t.Errorf("attach %s: exit %d, want the build's history to record the commit used:\n%s%s", id, a.code, a.stdout, a.stderr)
	}
}
