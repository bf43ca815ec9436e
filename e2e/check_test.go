package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"google.golang.org/protobuf/proto"

	"distbuild/artifactcache"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

// checkSystem is a test-only system of two chunks built from the demo's
// demo-config repository: steady, whose output depends only on its source,
// and stamped, which also writes the time it was built, as careless build
// scripts do.
const checkSystem = "systems/check-system.morph"

// addCheckDefinitions adds checkSystem to the farm's definitions.
func addCheckDefinitions(f *farm) {
	f.t.Helper()
	base, err := os.ReadFile(filepath.Join(f.defs, "strata", "demo-base.morph"))
	if err != nil {
		f.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^- name: demo-config\n(?:  .*\n)*?  ref: "?([0-9a-f]{40})"?\n`).FindSubmatch(base)
	if m == nil {
		f.t.Fatal("cannot find demo-config's commit in strata/demo-base.morph")
	}
	chunk := func(name string) string {
		return "- name: " + name + "\n  morph: strata/check-demo/" + name + ".morph\n  repo: upstream:demo-config\n  ref: " + string(m[1]) +
			"\n  unpetrify-ref: master\n  build-mode: bootstrap\n"
	}
	f.add(map[string]string{
		"strata/check-demo.morph": "name: check-demo\nkind: stratum\nchunks:\n" + chunk("steady") + chunk("stamped"),
		"strata/check-demo/steady.morph": "name: steady\nkind: chunk\nbuild-system: manual\ninstall-commands:\n" +
			`- mkdir -p "$DESTDIR/usr/share/steady" && echo "made from the commit of $SOURCE_DATE_EPOCH" > "$DESTDIR/usr/share/steady/README"` + "\n",
		"strata/check-demo/stamped.morph": "name: stamped\nkind: chunk\nbuild-system: manual\ninstall-commands:\n" +
			`- mkdir -p "$DESTDIR/usr/share/stamped" && echo same every time > "$DESTDIR/usr/share/stamped/README"` + "\n" +
			`- date +%s%N > "$DESTDIR/usr/share/stamped/build-time"` + "\n",
		checkSystem: "name: check-system\nkind: system\narch: x86_64\nstrata:\n- morph: strata/check-demo.morph\n",
	})
}

// manifestOf reads the manifest the farm's cache holds under key.
func (f *farm) manifestOf(key string) *pb.Manifest {
	f.t.Helper()
	c, err := artifactcache.Dial(f.cache)
	if err != nil {
		f.t.Fatal(err)
	}
	defer c.Close()
	k, err := digest.ParseCacheKey(key)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := c.GetManifest(context.Background(), k)
	if err != nil {
		f.t.Fatalf("the manifest of %s: %v", key, err)
	}
	return m
}

// buildID is the id a build's output says the controller gave it.
func buildID(t *testing.T, r result) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^build (\S+) accepted$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no build id in\n%s", r.stdout)
	}
	return m[1]
}

// TestCheckFindsExactlyTheFileOfAStepThatIsNotReproducible builds the
// test-only system, then checks it: each chunk is built again on the
// other worker, steady is found reproducible, and stamped differs in its
// build-time file and nowhere else. The cached artifacts are untouched,
// the results are what `initiator status` shows, and checking only the
// reproducible step succeeds.
func TestCheckFindsExactlyTheFileOfAStepThatIsNotReproducible(t *testing.T) {
	// The workers get a stand-in diffoscope on their PATH (Debian's is
	// hundreds of megabytes of dependencies): it shows that the checking
	// worker runs it on the two tarballs and keeps its report.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "diffoscope"), []byte("#!/bin/sh\necho \"diffoscope stand-in: $*\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	f := startFarm(t, "worker-1", "worker-2")
	addCheckDefinitions(f)
	g := f.graph(checkSystem)
	built := f.initiator("build", checkSystem)
	if built.code != 0 {
		t.Fatalf("build: exit %d\n%s%s", built.code, built.stdout, built.stderr)
	}
	builders := built.started()
	before := f.manifestOf(g["stamped"].CacheKey)

	r := f.initiator("build", "--check", checkSystem)
	if r.code == 0 {
		t.Fatalf("build --check of a system with a step that is not reproducible exited 0:\n%s%s", r.stdout, r.stderr)
	}
	for _, step := range []string{"steady", "stamped"} {
		checker := r.started()[step+".check"]
		if checker == "" || checker == builders[step] {
			t.Errorf("%s was built on %q and checked on %q; want the check on the other worker", step, builders[step], checker)
		}
	}
	for _, want := range []string{
		`(?m)^checked  steady: reproducible: the rebuild is identical \(built by worker-\d, rebuilt on worker-\d\)$`,
		`(?m)^checked  stamped: NOT reproducible: 1 difference\(s\) `,
		`(?m)^ +stamped-misc: usr/share/stamped/build-time: content differs: sha256:\w+ \(\d+ bytes\) \(cached\) vs sha256:\w+ \(\d+ bytes\) \(rebuilt\)$`,
		`(?m)^checks: 1 reproducible, 1 not reproducible, 0 not checked$`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("build --check output lacks a line matching %s:\n%s", want, r.stdout)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^ +stamped-misc: `).FindAllString(r.stdout, -1)); n != 1 {
		t.Errorf("build --check reports more than build-time as differing:\n%s", r.stdout)
	}
	if log, err := os.ReadFile(filepath.Join(f.defs, "build-step-stamped.check.log")); err != nil || !strings.Contains(string(log), "# distbuild: check of chunk stamped on") {
		t.Errorf("build-step-stamped.check.log: %v\n%s", err, log)
	}
	if after := f.manifestOf(g["stamped"].CacheKey); !proto.Equal(after, before) {
		t.Errorf("the check replaced the cached artifact:\nbefore %v\nafter  %v", before, after)
	}

	report := f.initiator("logs", "--diffoscope", buildID(t, r), "stamped")
	if report.code != 0 || !regexp.MustCompile(`diffoscope stand-in: --text - \S+/cached-stamped-misc\.tar \S+/rebuilt-stamped-misc\.tar`).MatchString(report.stdout) {
		t.Errorf("logs --diffoscope of stamped: exit %d; want the report on its two tarballs\n%s%s", report.code, report.stdout, report.stderr)
	}
	if none := f.initiator("logs", "--diffoscope", buildID(t, r), "steady"); none.code == 0 || !strings.Contains(none.stderr, "has no diffoscope report") {
		t.Errorf("logs --diffoscope of the reproducible steady: exit %d, stderr %q; want a failure saying there is none", none.code, none.stderr)
	}
	s := f.initiator("status", buildID(t, r))
	for _, want := range []string{
		`(?m)^steady\s+finished\s.*\sreproducible\s`,
		`(?m)^stamped\s+finished\s.*\sdiffers\s`,
		`(?m)^stamped\.check\s+failed\s.*\sdiffers\s.*not reproducible`,
		`(?m)^  stamped-misc: usr/share/stamped/build-time: content differs`,
	} {
		if !regexp.MustCompile(want).MatchString(s.stdout) {
			t.Errorf("status lacks a line matching %s:\n%s", want, s.stdout)
		}
	}

	t.Run("dashboard", func(t *testing.T) {
		browser := startBrowser(t)
		base := "http://" + f.dashboard + "/builds/" + buildID(t, r)
		do(t, browser, 20*time.Second, "opening the checked build's page", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("steps")))
		for step, want := range map[string]string{"steady": "reproducible", "stamped": "differs", "check-demo": ""} {
			got := eval[string](t, browser, `document.querySelector('#steps tr[data-step="`+step+`"] td.check').textContent.trim()`)
			if got != want {
				t.Errorf("the dashboard's check column for %s says %q; want %q", step, got, want)
			}
		}
		do(t, browser, 20*time.Second, "opening stamped's page", chromedp.Navigate(base+"/steps/stamped"), chromedp.WaitVisible(chromedp.ID("check")))
		if text := eval[string](t, browser, `document.getElementById("check").innerText`); !strings.Contains(text, "usr/share/stamped/build-time: content differs") {
			t.Errorf("stamped's page shows %q; want its differing file", text)
		}
	})

	// A stratum's check compares its metadata, the member list.
	only := f.initiator("build", "--check", "--step", "steady", "--step", "check-demo", checkSystem)
	if only.code != 0 || !strings.Contains(only.stdout, "checked  steady: reproducible") || !strings.Contains(only.stdout, "checked  check-demo: reproducible") ||
		strings.Contains(only.stdout, "checked  stamped") {
		t.Errorf("build --check --step steady --step check-demo: exit %d; want success with those two alone checked\n%s%s", only.code, only.stdout, only.stderr)
	}
	if bad := f.initiator("build", "--check", "--step", "no-such-step", checkSystem); bad.code == 0 || !strings.Contains(bad.stdout+bad.stderr, "cannot check no-such-step: not a step of this build") {
		t.Errorf("build --check --step no-such-step: exit %d\n%s%s", bad.code, bad.stdout, bad.stderr)
	}
}

// TestACheckWithNoOtherWorkerSaysSoRatherThanWaiting checks on a farm of
// one worker: no other worker can build the step again, so the check ends
// at once as not checked instead of hanging the build.
func TestACheckWithNoOtherWorkerSaysSoRatherThanWaiting(t *testing.T) {
	f := startFarm(t, "worker-1")
	addCheckDefinitions(f)
	r := f.initiator("build", "--check", "--step", "steady", checkSystem)
	if r.code == 0 || !strings.Contains(r.stdout, "checked  steady: not checked: no connected worker other than worker-1, which built it, can build it again") {
		t.Errorf("build --check on one worker: exit %d; want a failure saying no other worker could check\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestARequiredReproducibleStepGatesWhatDependsOnIt runs a controller
// that requires stamp* to be reproducible: stamped is built, checked on
// the other worker and found to differ, so nothing that depends on it
// (its stratum, the system) is built, and a second build is refused at
// once from the recorded result. steady, not matched, is built as usual.
func TestARequiredReproducibleStepGatesWhatDependsOnIt(t *testing.T) {
	f := startFarmWith(t, []string{"--require-reproducible", "stamp*"}, "worker-1", "worker-2")
	addCheckDefinitions(f)
	r := f.initiator("build", checkSystem)
	if r.code == 0 || !strings.Contains(r.stdout, "checked  stamped: NOT reproducible") {
		t.Fatalf("build under --require-reproducible: exit %d; want stamped checked and the build failed\n%s%s", r.code, r.stdout, r.stderr)
	}
	started := r.started()
	if started["stamped.check"] == "" || started["stamped.check"] == started["stamped"] {
		t.Errorf("stamped built on %q, checked on %q; want a check on the other worker", started["stamped"], started["stamped.check"])
	}
	for _, gated := range []string{"check-demo", "check-system", "steady.check"} {
		if started[gated] != "" {
			t.Errorf("%s ran (on %s); the required check failed, so it must not", gated, started[gated])
		}
	}
	again := f.initiator("build", checkSystem)
	if again.code == 0 || !strings.Contains(again.stdout+again.stderr, "step stamped is not reproducible, and this controller requires it to be") || len(again.started()) != 0 {
		t.Errorf("second build: exit %d; want it refused from the recorded check without running anything\n%s%s", again.code, again.stdout, again.stderr)
	}
}

// TestEveryDemoChunkIsReproducibleOnAnotherWorker builds the demo system
// with --check: every chunk is built a second time on the other worker and
// found identical, the farm's own proof of what "Reproducible artifacts"
// in the README promises.
func TestEveryDemoChunkIsReproducibleOnAnotherWorker(t *testing.T) {
	f := startFarm(t, "worker-1", "worker-2")
	chunks := 0
	for _, s := range f.graph(demoSystem) {
		if s.Kind == "chunk" {
			chunks++
		}
	}
	r := f.initiator("build", "--check", demoSystem)
	want := fmt.Sprintf("checks: %d reproducible, 0 not reproducible, 0 not checked\n", chunks)
	if r.code != 0 || chunks == 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("build --check of the demo: exit %d; want success and %q\n%s%s", r.code, want, r.stdout, r.stderr)
	}
}
