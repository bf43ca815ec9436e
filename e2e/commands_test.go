package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBuildsOutliveTheirInitiator follows builds with the commands that do
// not submit them: a detached build is listed, re-joined with attach (which
// completes the logs of steps that ended before it from the cache),
// inspected with status and logs; another is left by Ctrl-C on attach and
// then cancelled; a failing one's log is read after the fact.
func TestBuildsOutliveTheirInitiator(t *testing.T) {
	f := startFarm(t, "worker-1", "worker-2")
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n", "kind: chunk\npre-build-commands:\n- sleep 3\n")
	id := f.detach(demoSystem)

	t.Run("list shows the detached build running", func(t *testing.T) {
		waitFor(t, "list to show the build running", func() bool {
			r := f.initiator("list")
			if r.code != 0 {
				t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+running\s+\S+\s+\S+\s+\d+/\d+\s+0\s+` + demoSystem + `\s+[0-9a-f]{12}$`).MatchString(r.stdout)
		})
	})

	var finishedBefore []string
	t.Run("status and logs of a running build", func(t *testing.T) {
		r := f.waitForRunning(id, "demo-sum")
		for _, m := range regexp.MustCompile(`(?m)^(\S+)\s+finished\s+worker-`).FindAllStringSubmatch(r.stdout, -1) {
			finishedBefore = append(finishedBefore, m[1])
		}
		if len(finishedBefore) == 0 {
			t.Fatalf("no step had finished while demo-sum ran:\n%s", r.stdout)
		}
		// demo-sum sleeps for 3 s, so it is still running.
		l := f.initiator("logs", id, "demo-sum")
		if l.code != 1 || !strings.Contains(l.stderr, "has no log yet: it is running; follow its output with: initiator attach "+id) {
			t.Errorf("logs of a running step: exit %d, stderr %q; want a failure suggesting attach", l.code, l.stderr)
		}
	})

	t.Run("attach replays the build and completes earlier steps' logs", func(t *testing.T) {
		r := f.initiator("attach", id)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "build "+id+" accepted\n") || !strings.Contains(r.stdout, "build succeeded in ") {
			t.Fatalf("attach: exit %d, want 0 with the build replayed from its acceptance to its success\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, step := range finishedBefore {
			if !strings.Contains(r.stdout, "started  "+step+" on ") {
				t.Errorf("the replay lacks the start of %s, which ended before attaching", step)
			}
			log, err := os.ReadFile(filepath.Join(f.defs, "build-step-"+step+".log"))
			if err != nil || !regexp.MustCompile(`^\[ *\d+\.\d{3}s\] # distbuild: `).MatchString(string(log)) || !strings.Contains(string(log), " "+step+" on worker-") {
				t.Errorf("build-step-%s.log of a step that ended before attaching is not its complete log: %v\n%s", step, err, log)
			}
		}
		log, err := os.ReadFile(filepath.Join(f.defs, "build-step-demo-sum.log"))
		if n := strings.Count(string(log), "# build: sleep 3\n"); err != nil || n != 1 {
			t.Errorf("build-step-demo-sum.log has its command %d times, want once (live output replaced by the stored log): %v\n%s", n, err, log)
		}
	})

	t.Run("status shows every step finished", func(t *testing.T) {
		r := f.initiator("status", id)
		// Each step with its worker, attempts, duration, no check and phases.
		steps := regexp.MustCompile(`(?m)^(\S+)\s+(\S+)\s+worker-\d\s+\d+\s+\S+s\s+-\s+(?:stage|fetch) \S+(?:, [\w-]+ \S+)*, upload \S+\s*$`).FindAllStringSubmatch(r.stdout, -1)
		if r.code != 0 || !strings.Contains(r.stdout, "state:     succeeded\n") || len(steps) != len(f.graph(demoSystem)) {
			t.Fatalf("status: exit %d, %d steps built; want success and all %d steps\n%s%s", r.code, len(steps), len(f.graph(demoSystem)), r.stdout, r.stderr)
		}
		for _, s := range steps {
			if s[2] != "finished" {
				t.Errorf("step %s is %s, want finished", s[1], s[2])
			}
		}
	})

	t.Run("logs prints a step's stored log", func(t *testing.T) {
		r := f.initiator("logs", id, "demo-sum")
		attached, _ := os.ReadFile(filepath.Join(f.defs, "build-step-demo-sum.log"))
		if r.code != 0 || !strings.Contains(r.stdout, "# build: sleep 3\n") || r.stdout != string(attached) {
			t.Errorf("logs: exit %d, want the log attach saved\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := f.initiator("logs", id, "nosuch"); r.code != 1 || r.stderr != "initiator logs: build "+id+" has no step \"nosuch\" (initiator status "+id+" lists its steps)\n" {
			t.Errorf("logs of an unknown step: exit %d, stderr %q", r.code, r.stderr)
		}
		if r := f.initiator("logs", "nosuch", "demo-sum"); r.code != 1 || r.stderr != "initiator logs: no build \"nosuch\"\n" {
			t.Errorf("logs of an unknown build: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("Ctrl-C leaves attach and the build runs on until cancelled", func(t *testing.T) {
		f.change("strata/demo-apps/demo-sum.morph", "- sleep 3\n", "- sleep 30\n")
		other := f.detach(demoSystem)
		f.waitForRunning(other, "demo-sum")
		cmd := exec.Command(filepath.Join(binDir, "initiator"), "attach", other)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "DISTBUILD_CONTROLLER="+f.controller, "DISTBUILD_CACHE="+f.cache)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut strings.Builder
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || lines.Text() != "build "+other+" accepted" {
			t.Fatalf("attach began with %q, want the replayed acceptance", lines.Text())
		}
		cmd.Process.Signal(os.Interrupt)
		for lines.Scan() {
		}
		err = cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(errOut.String(), "initiator: stopped following build "+other+"; it keeps running") {
			t.Errorf("attach after Ctrl-C: %v, stderr %q; want exit 1 saying the build keeps running", err, errOut.String())
		}
		if r := f.initiator("status", other); r.code != 0 || !strings.Contains(r.stdout, "state:     running\n") {
			t.Fatalf("after leaving attach: exit %d, want the build still running\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := f.initiator("cancel", other); r.code != 0 || r.stdout != "build "+other+": cancelled\n" {
			t.Errorf("cancel: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if r := f.initiator("status", other); r.code != 1 || !strings.Contains(r.stdout, "state:     cancelled\n") || !regexp.MustCompile(`(?m)^strbuf\s+finished\s+\(cached\)\s`).MatchString(r.stdout) {
			t.Errorf("status of the cancelled build: exit %d, want 1, cancelled, and strbuf found in the cache\n%s%s", r.code, r.stdout, r.stderr)
		}
		// strbuf did not run in this build: its log is the one the first
		// build stored with the artifact.
		if r := f.initiator("logs", other, "strbuf"); r.code != 0 || !regexp.MustCompile(`^\[ *\d+\.\d{3}s\] # distbuild: chunk strbuf on worker-`).MatchString(r.stdout) {
			t.Errorf("logs of a step found in the cache: exit %d, want the log stored with its artifact\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := f.initiator("attach", other); r.code != 1 || !strings.Contains(r.stdout, "build cancelled: cancelled on request") {
			t.Errorf("attach to the cancelled build: exit %d, want 1 and its cancellation\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := f.initiator("list"); r.code != 0 || strings.Contains(r.stdout, other) || strings.Contains(r.stdout, id) {
			t.Errorf("list still shows ended builds:\n%s%s", r.stdout, r.stderr)
		}
		all := f.initiator("list", "--all")
		for build, state := range map[string]string{id: "succeeded", other: "cancelled"} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(build) + `\s+` + state + `\s`).MatchString(all.stdout) {
				t.Errorf("list --all does not show %s as %s:\n%s%s", build, state, all.stdout, all.stderr)
			}
		}
	})

	t.Run("a failed step's log is kept", func(t *testing.T) {
		const marker = "demo-broken: this chunk fails to build on purpose"
		broken := f.detach("systems/broken-system.morph")
		r := f.initiator("attach", broken)
		if r.code != 1 || !strings.Contains(r.stdout, "build failed: step demo-broken failed") || !strings.Contains(r.stderr, marker) {
			t.Errorf("attach to the failing build: exit %d, want 1 with the fetched log's tail\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := f.initiator("status", broken); r.code != 1 || !regexp.MustCompile(`(?m)^demo-broken\s+failed\s+worker-\d\s+1\s+\S`).MatchString(r.stdout) {
			t.Errorf("status of the failed build: exit %d, want 1 and demo-broken failed with its reason\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := f.initiator("logs", broken, "demo-broken"); r.code != 0 || !strings.Contains(r.stdout, marker) {
			t.Errorf("logs of the failed step: exit %d, want its log\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

// detach submits a build with --detach and returns the id it prints last.
func (f *farm) detach(system string) string {
	f.t.Helper()
	r := f.initiator("build", "--detach", system)
	id := strings.TrimSuffix(r.stdout, "\n")
	if r.code != 0 || !regexp.MustCompile(`^[0-9a-f]+$`).MatchString(id) {
		f.t.Fatalf("build --detach: exit %d, want 0 and only the build id on stdout\n%s%s", r.code, r.stdout, r.stderr)
	}
	return id
}

// waitForRunning polls status until the build's step is running, checking
// that status of a running build exits 0, and returns the last status.
func (f *farm) waitForRunning(id, step string) result {
	f.t.Helper()
	running := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(step) + `\s+running\s+worker-`)
	var r result
	waitFor(f.t, step+" to run", func() bool {
		if r = f.initiator("status", id); r.code != 0 {
			f.t.Fatalf("status of a running build: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
		}
		return running.MatchString(r.stdout)
	})
	return r
}
