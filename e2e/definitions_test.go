package e2e

import (
	"maps"
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

// TestAClusterOfTwoArchitecturesBuildsEachOnItsOwnWorkers builds a
// cluster of an x86_64 and an armv7lhf system made of the same stratum:
// every step is built once for each architecture, each on a worker of its
// own (the armv7lhf worker is an x86_64 host that says otherwise, which
// the demo's host-compiled chunks do not mind), and every step's log is
// written under its unique name.
func TestAClusterOfTwoArchitecturesBuildsEachOnItsOwnWorkers(t *testing.T) {
	f := startFarm(t, "worker-1")
	f.start("worker-arm", "worker", "--name", "worker-arm", "--arch", "armv7lhf", "--slots", "2", "--controller", f.workerAddr, "--cache", f.cache,
		"--work-dir", filepath.Join(f.dir, "worker-arm"), "--sandbox", "bwrap")
	system := "kind: system\nstrata:\n- morph: strata/demo-base.morph\n"
	f.add(map[string]string{
		"systems/base-x86_64.morph":   "name: base-x86_64\narch: x86_64\n" + system,
		"systems/base-armv7lhf.morph": "name: base-armv7lhf\narch: armv7lhf\n" + system,
		"clusters/release.morph":      "name: release\nkind: cluster\nsystems:\n- morph: systems/base-x86_64.morph\n- morph: systems/base-armv7lhf.morph\n",
	})

	g := f.graph("clusters/release.morph")
	want := map[string]string{} // step -> the worker that must build it
	for name, s := range g {
		want[name] = map[string]string{"x86_64": "worker-1", "armv7lhf": "worker-arm"}[s.Arch]
		if base, ok := strings.CutSuffix(name, "@armv7lhf"); ok && (s.Arch != "armv7lhf" || g[base].Arch != "x86_64" || g[base].CacheKey == s.CacheKey) {
			t.Errorf("%s is for %s with key %s, want the armv7lhf build of x86_64's %s under another key", name, s.Arch, s.CacheKey[:12], base)
		}
	}
	if len(g) < 10 || g["demo-base@armv7lhf"].Arch != "armv7lhf" || g["base-armv7lhf"].Arch != "armv7lhf" || g["demo-base"].Arch != "x86_64" {
		t.Fatalf("graph of the cluster: %v, want demo-base's steps once for each architecture", keysOf(g))
	}

	r := f.initiator("build", "clusters/release.morph")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := r.started(); !maps.Equal(got, want) {
		t.Errorf("steps started on %v\nwant            %v", got, want)
	}
	for _, step := range []string{"demo-config", "demo-config@armv7lhf", "base-armv7lhf"} {
		if data, err := os.ReadFile(filepath.Join(f.defs, "build-step-"+step+".log")); err != nil || len(data) == 0 {
			t.Errorf("build-step-%s.log missing or empty: %v", step, err)
		}
	}
}
