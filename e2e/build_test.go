package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const demoSystem = "systems/demo-system.morph"

// TestDemoFarm runs the demo's whole story on one farm, in order: a
// partial build, the full build on both workers, the program from the
// system artifact, a null build, a one-chunk change, two initiators at once,
// and a failing build.
func TestDemoFarm(t *testing.T) {
	f := startFarm(t, "worker-1", "worker-2")
	before := f.graph(demoSystem)

	t.Run("partial build builds only what it needs", func(t *testing.T) {
		r := f.initiator("build", "--partial", "checksum", demoSystem)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		want := keysOf(closure(before, "checksum"))
		if got := keysOf(r.started()); !slices.Equal(got, want) {
			t.Errorf("partial build of checksum started %v, want its closure %v", got, want)
		}
	})

	t.Run("full build uses both workers and the system works", func(t *testing.T) {
		r := f.initiator("build", demoSystem)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		started := r.started()
		partial := closure(before, "checksum")
		var want []string
		for name := range before {
			if !partial[name] {
				want = append(want, name)
			}
		}
		slices.Sort(want)
		if got := keysOf(started); !slices.Equal(got, want) {
			t.Errorf("full build started %v, want every step the partial build did not build: %v", got, want)
		}
		workers := map[string]bool{}
		for _, w := range started {
			workers[w] = true
		}
		if !workers["worker-1"] || !workers["worker-2"] {
			t.Errorf("steps ran on %v, want both workers", keysOf(workers))
		}
		for _, step := range []string{"strbuf", "demo-hello", "demo-system"} {
			if data, err := os.ReadFile(filepath.Join(f.defs, "build-step-"+step+".log")); err != nil || len(data) == 0 {
				t.Errorf("build-step-%s.log missing or empty: %v", step, err)
			}
		}
		key := regexp.MustCompile(`(?m)^  SYSTEM demo-system ([0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
		if key == nil || key[1] != before["demo-system"].CacheKey {
			t.Fatalf("the build did not report the system's cache key %s:\n%s", before["demo-system"].CacheKey, r.stdout)
		}
		root := filepath.Join(f.dir, "system")
		if r := f.initiator("fetch", key[1], root); r.code != 0 {
			t.Fatalf("initiator fetch: %s", r.stderr)
		}
		out, err := exec.Command(filepath.Join(root, "usr", "bin", "demo-hello")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "demo-hello: all 5 checks passed") {
			t.Errorf("demo-hello from the system: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(root, "usr", "include", "codec.h")); !os.IsNotExist(err) {
			t.Errorf("the system holds demo-libs' headers, though it takes only its runtime split")
		}
	})

	t.Run("second build runs nothing", func(t *testing.T) {
		r := f.initiator("build", demoSystem)
		if r.code != 0 || len(r.started()) != 0 || !strings.Contains(r.stdout, "0 to build") {
			t.Errorf("exit %d, started %v; want success with nothing built\n%s", r.code, r.started(), r.stdout)
		}
	})

	t.Run("a changed chunk rebuilds exactly it and what depends on it", func(t *testing.T) {
		f.change("strata/demo-libs/codec.morph", "kind: chunk\n", "kind: chunk\npost-install-commands:\n- echo codec was changed\n")
		after := f.graph(demoSystem)
		var changed []string
		for name, s := range after {
			if before[name].CacheKey != s.CacheKey {
				changed = append(changed, name)
			}
		}
		slices.Sort(changed)
		if !slices.Contains(changed, "codec") || !slices.Contains(changed, "checksum") || slices.Contains(changed, "strbuf") {
			t.Fatalf("keys changed for %v: want codec and its reverse dependencies only", changed)
		}
		r := f.initiator("build", demoSystem)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if got := keysOf(r.started()); !slices.Equal(got, changed) {
			t.Errorf("rebuilt %v, want exactly the steps whose keys changed: %v", got, changed)
		}
		before = after
	})

	t.Run("two initiators building at once share the steps", func(t *testing.T) {
		f.change("strata/demo-apps/demo-hello.morph", "kind: chunk\n", "kind: chunk\npre-build-commands:\n- sleep 1\n")
		runs := func(step string) int {
			return strings.Count(f.log("worker-1")+f.log("worker-2"), "step="+step+" kind=")
		}
		shared := []string{"demo-hello", "demo-apps", "demo-system"}
		runsBefore := map[string]int{}
		for _, step := range shared {
			runsBefore[step] = runs(step)
		}
		var wg sync.WaitGroup
		results := make([]result, 2)
		for i := range results {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = f.initiator("build", demoSystem) }()
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 {
				t.Fatalf("initiator %d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
			}
		}
		for _, step := range shared {
			if n := runs(step) - runsBefore[step]; n != 1 {
				t.Errorf("%s ran %d times for the two builds, want once, shared", step, n)
			}
		}
		for i, r := range results {
			if !strings.Contains(r.stdout, "build succeeded") {
				t.Errorf("initiator %d did not see the build succeed:\n%s", i, r.stdout)
			}
		}
	})

	t.Run("a failing command fails the build with its log", func(t *testing.T) {
		r := f.initiator("build", "systems/broken-system.morph")
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
		}
		const marker = "demo-broken: this chunk fails to build on purpose"
		if !strings.Contains(r.stdout, "build failed: step demo-broken failed") || !strings.Contains(r.stderr, "build-step-demo-broken.log") || !strings.Contains(r.stderr, marker) {
			t.Errorf("failure output does not name the step and show its log:\n%s%s", r.stdout, r.stderr)
		}
		log, err := os.ReadFile(filepath.Join(f.defs, "build-step-demo-broken.log"))
		if err != nil || !strings.Contains(string(log), marker) {
			t.Errorf("build-step-demo-broken.log lacks the error: %v\n%s", err, log)
		}
	})

	t.Run("Ctrl-C cancels the build and its running step", func(t *testing.T) {
		f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n", "kind: chunk\npre-build-commands:\n- sleep "+sleepDuration+"\n")
		cmd := exec.Command(filepath.Join(binDir, "initiator"), "build", demoSystem)
		cmd.Dir = f.defs
		cmd.Env = append(os.Environ(), "DISTBUILD_CONTROLLER="+f.controller)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut strings.Builder
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			out.WriteString(lines.Text() + "\n")
			if strings.HasPrefix(lines.Text(), "started  demo-sum on ") {
				break
			}
		}
		waitFor(t, "the step's sleep to start", func() bool { return sleeping() })
		cmd.Process.Signal(os.Interrupt)
		rest, _ := io.ReadAll(stdout)
		out.Write(rest)
		err = cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("initiator exited with %v after Ctrl-C, want status 1", err)
		}
		if !strings.Contains(out.String(), "build cancelled: cancelled by the initiator") || !strings.Contains(errOut.String(), "cancelling the build") {
			t.Errorf("output after Ctrl-C:\n%s%s", out.String(), errOut.String())
		}
		waitFor(t, "the worker to kill the step's processes", func() bool { return !sleeping() })
	})
}

// sleepDuration is how long the Ctrl-C test's step sleeps: about two
// minutes, in a number of seconds no other test process uses, so that
// sleeping sees this farm's sleep only. A plain "sleep 120" matched any
// such process on the machine (another run of this test at the same time,
// or a sandbox an earlier run leaked): the test then sent Ctrl-C while its
// own step was still fetching its sources, and waited for the death of a
// process its farm had never started.
var sleepDuration = fmt.Sprintf("120.%d", os.Getpid())

// sleeping reports whether the "sleep" of sleepDuration started by a build
// step is running.
func sleeping() bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && string(data) == "sleep\x00"+sleepDuration+"\x00" {
			stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
			if !strings.Contains(string(stat), ") Z ") { // zombies are dead
				return true
			}
		}
	}
	return false
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
