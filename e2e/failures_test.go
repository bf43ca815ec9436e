package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "distbuild/proto/distbuild/v1"
)

// The tests in this file kill farm processes with SIGKILL, as a power cut
// or the kernel's OOM killer would: nothing gets to clean up, and the
// kernel closes the dead process's sockets. They need each daemon's
// process, which f.start keeps to itself, so they start the farm with
// crashFarm instead of startFarm.

// proc is one run of a daemon that a test may kill and start again.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
}

// kill9 sends SIGKILL and waits until the process is gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die of SIGKILL within 10s", p.name)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// crashFarm is a farm whose trove, controller and workers can be killed
// and restarted. A restarted daemon's output is appended to the same log
// (f.log(name)), so a log covers the whole test.
type crashFarm struct {
	*farm
	troveProc, controllerProc *proc
	workers                   map[string]*proc
	troveArgs                 []string
	controllerArgs            []string
}

// startCrashFarm starts a trove and a controller like startFarm, and the
// named workers; extra flags go to the controller.
func startCrashFarm(t *testing.T, workers []string, controllerFlags ...string) *crashFarm {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap is not installed: the workers sandbox steps with it (apt-get install bubblewrap)")
	}
	f := &crashFarm{farm: &farm{t: t, dir: t.TempDir(), logs: map[string]*bytes.Buffer{}}, workers: map[string]*proc{}}
	repoRoot, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mk := exec.Command(filepath.Join(repoRoot, "demo", "make-trove.sh"), filepath.Join(f.dir, "trove"))
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make-trove.sh: %v\n%s", err, out)
	}
	f.defs = filepath.Join(f.dir, "trove", "definitions")
	f.bare = filepath.Join(f.dir, "trove", "git", "baserock", "definitions.git")

	f.troveArgs = []string{"serve", "--dir", f.cacheDir(), "--git-dir", filepath.Join(f.dir, "trove", "git")}
	var addrs map[string]string
	f.troveProc, addrs = f.spawnDaemon("trove", "trove", slices.Concat(f.troveArgs, []string{"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"})...)
	f.cache, f.http = addrs["grpc"], addrs["http"]
	f.git(f.defs, "remote", "set-url", "origin", "http://"+f.http+"/git/baserock/definitions.git")

	f.controllerArgs = slices.Concat([]string{"--state-dir", filepath.Join(f.dir, "controller"), "--cache", f.cache,
		"--trove-git", "http://" + f.http + "/git"}, controllerFlags)
	f.controllerProc, addrs = f.spawnDaemon("controller", "controller", slices.Concat(f.controllerArgs, []string{"--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"})...)
	f.controller, f.workerAddr = addrs["grpc"], addrs["worker"]
	for _, w := range workers {
		f.startWorker(w)
	}
	return f
}

func (f *crashFarm) cacheDir() string { return filepath.Join(f.dir, "cache") }

// startWorker starts a worker like startFarm does.
func (f *crashFarm) startWorker(name string) *proc {
	f.t.Helper()
	p := f.spawn(name, "worker", "--name", name, "--slots", "2", "--controller", f.workerAddr, "--cache", f.cache,
		"--work-dir", filepath.Join(f.dir, name), "--sandbox", "bwrap")
	f.workers[name] = p
	return p
}

// restartController starts the controller again on the address it had,
// with the same state directory: workers and initiators find it where they
// left it.
func (f *crashFarm) restartController() {
	f.t.Helper()
	var addrs map[string]string
	f.controllerProc, addrs = f.spawnDaemon("controller", "controller", slices.Concat(f.controllerArgs, []string{"--listen", f.controller, "--worker-listen", f.workerAddr, "--http-listen", "127.0.0.1:0"})...)
	if addrs["grpc"] != f.controller || addrs["worker"] != f.workerAddr {
		f.t.Fatalf("the restarted controller listens on %v, want %s and %s", addrs, f.controller, f.workerAddr)
	}
}

// restartTrove starts the trove again on its ports, over the same store.
func (f *crashFarm) restartTrove() {
	f.t.Helper()
	var addrs map[string]string
	f.troveProc, addrs = f.spawnDaemon("trove", "trove", slices.Concat(f.troveArgs, []string{"--listen", f.cache, "--http-listen", f.http})...)
	if addrs["grpc"] != f.cache || addrs["http"] != f.http {
		f.t.Fatalf("the restarted trove listens on %v, want grpc %s and http %s", addrs, f.cache, f.http)
	}
}

// spawn starts a binary in the background until it exits or the test
// ends (SIGINT, then SIGKILL after 10s).
func (f *crashFarm) spawn(name, bin string, args ...string) *proc {
	f.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	f.logMu.Lock()
	buf := f.logs[name]
	first := buf == nil
	if first {
		buf = &bytes.Buffer{}
		f.logs[name] = buf
	}
	f.logMu.Unlock()
	if first {
		// Registered before any run's own cleanup, so it runs after
		// all of them: the log then holds every run's output.
		f.t.Cleanup(func() {
			if f.t.Failed() {
				f.t.Logf("--- %s log ---\n%s", name, f.log(name))
			}
		})
	}
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &f.logMu, w: buf}, &lockedWriter{mu: &f.logMu, w: buf}
	// A killed daemon's orphans might hold its output pipe open; Wait
	// must not wait for them.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	f.t.Cleanup(func() {
		if p.exited() {
			return
		}
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// spawnDaemon starts a daemon with a fresh --addr-file and returns the
// addresses it wrote once listening. (A daemon killed with SIGKILL leaves
// its address file behind, so the file is removed first.)
func (f *crashFarm) spawnDaemon(name, bin string, args ...string) (*proc, map[string]string) {
	f.t.Helper()
	addrFile := filepath.Join(f.dir, name+".addr")
	if err := os.Remove(addrFile); err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	p := f.spawn(name, bin, slices.Concat(args, []string{"--addr-file", addrFile})...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !p.exited() {
		if data, err := os.ReadFile(addrFile); err == nil {
			addrs := map[string]string{}
			if err := json.Unmarshal(data, &addrs); err != nil {
				f.t.Fatalf("%s wrote a bad address file: %v", name, err)
			}
			return p, addrs
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("%s did not start:\n%s", name, f.log(name))
	return nil, nil
}

// bgInitiator is an initiator running in the background, its output
// readable while it runs.
type bgInitiator struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	code           int
}

// startInitiator runs the initiator in the definitions checkout without
// waiting for it; the test's end kills it if it is still running.
func (f *farm) startInitiator(args ...string) *bgInitiator {
	f.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "initiator"), args...)
	cmd.Dir = f.defs
	cmd.Env = append(os.Environ(), "DISTBUILD_CONTROLLER="+f.controller, "DISTBUILD_CACHE="+f.cache)
	return startInBackground(f.t, cmd)
}

// startInBackground starts an initiator command without waiting for it;
// the test's end kills it if it is still running.
func startInBackground(t testing.TB, cmd *exec.Cmd) *bgInitiator {
	t.Helper()
	b := &bgInitiator{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.stdout, b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		b.code = cmd.ProcessState.ExitCode()
		if err != nil && b.code == 0 {
			b.code = -1
		}
		close(b.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-b.done
	})
	return b
}

func (b *bgInitiator) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait waits for the initiator to exit, at most limit.
func (b *bgInitiator) wait(t *testing.T, limit time.Duration) result {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(limit):
		b.cmd.Process.Kill()
		<-b.done
		t.Fatalf("initiator %v did not exit within %s; its output:\n%s%s", b.cmd.Args[1:], limit, b.stdout, b.stderr)
	}
	return result{code: b.code, stdout: b.stdout.String(), stderr: b.stderr.String()}
}

// syncBuffer is a buffer a process's output is copied into while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// jobsStarted counts, per step name, the jobs the workers' logs say they
// started ("job started: job=... step=NAME kind=..."), over the whole
// test. Within one system a step name stands for one cache key.
func (f *crashFarm) jobsStarted() map[string]int { return f.countInWorkerLogs(jobStartedRE) }

// jobsDone counts the jobs the workers finished: their artifacts and
// manifests are in the cache.
func (f *crashFarm) jobsDone() map[string]int { return f.countInWorkerLogs(jobDoneRE) }

var (
	jobStartedRE = regexp.MustCompile(`(?m)job started: job=\S+ step=(\S+) kind=`)
	jobDoneRE    = regexp.MustCompile(`(?m)job done: job=\S+ step=(\S+) `)
)

func (f *crashFarm) countInWorkerLogs(re *regexp.Regexp) map[string]int {
	n := map[string]int{}
	for name := range f.workers {
		for _, m := range re.FindAllStringSubmatch(f.log(name), -1) {
			n[m[1]]++
		}
	}
	return n
}

// process is one process, told apart from a later one reusing its pid by
// its start time.
type process struct {
	pid   int
	start string
}

// procStat reads a process's state, parent and start time from /proc.
func procStat(pid int) (state string, ppid int, start string, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, "", false
	}
	// pid (comm) state ppid ... with starttime the 22nd field; comm may
	// hold spaces and parentheses, so count from the last ')'.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 20 {
		return "", 0, "", false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0], ppid, fields[19], true
}

// alive reports whether p still runs: not gone, not a zombie, not another
// process that got its pid.
func (p process) alive() bool {
	state, _, start, ok := procStat(p.pid)
	return ok && state != "Z" && start == p.start
}

// sandboxOf finds a live `sleep ARG` descending from the process ancestor
// and returns it with its ancestors below ancestor (the step's shell and
// bubblewrap's processes), or nil if there is none.
func sandboxOf(arg string, ancestor int) []process {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if data, err := os.ReadFile(p); err != nil || string(data) != "sleep\x00"+arg+"\x00" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		var chain []process
		for pid > 1 {
			state, ppid, start, ok := procStat(pid)
			if !ok || state == "Z" {
				break
			}
			if pid == ancestor {
				return chain
			}
			chain = append(chain, process{pid, start})
			pid = ppid
		}
	}
	return nil
}

// waitForLine waits until the initiator printed a line starting with
// prefix.
func (b *bgInitiator) waitForLine(t *testing.T, prefix string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the initiator to print %q", prefix), func() bool {
		out := b.stdout.String()
		return strings.HasPrefix(out, prefix) || strings.Contains(out, "\n"+prefix)
	})
}

// stepLines are the lines of an initiator's output about one step
// (started, finished, retrying, FAILED), in order.
func stepLines(out, step string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		for _, verb := range []string{"started  ", "finished ", "retrying ", "FAILED   "} {
			if strings.HasPrefix(l, verb+step+" ") || strings.HasPrefix(l, verb+step+":") {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// TestAWorkerKilledMidStepLosesItToAnotherWorker kills a worker with
// SIGKILL while it runs a step. The kernel closes the dead worker's
// connection, so the controller requeues the step on the other worker at
// once, long before the worker's lease would run out; the build succeeds,
// and the step's sandboxed processes die with the worker (bubblewrap's
// --die-with-parent) rather than running on as orphans.
func TestAWorkerKilledMidStepLosesItToAnotherWorker(t *testing.T) {
	// A two-minute lease: a requeue within waitFor's 30 seconds can then
	// only come from the dropped connection.
	f := startCrashFarm(t, []string{"worker-1"}, "--worker-lease", "2m")
	// demo-sum hangs on worker-1 only, as a step on a machine about to die
	// would; elsewhere it builds at once. Only worker-1 is up when the
	// build starts, so demo-sum starts there.
	const hang = "41.5"
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n",
		"kind: chunk\npre-build-commands:\n- case \"$PWD\" in */worker-1/*) sleep "+hang+" ;; esac\n")
	w1 := f.workers["worker-1"]
	build := f.startInitiator("build", demoSystem)
	build.waitForLine(t, "started  demo-sum on worker-1")
	var sandbox []process
	waitFor(t, "demo-sum's sleep to run on worker-1", func() bool {
		sandbox = sandboxOf(hang, w1.cmd.Process.Pid)
		return sandbox != nil
	})

	f.startWorker("worker-2")
	waitFor(t, "worker-2 to connect", func() bool {
		return strings.Contains(f.log("controller"), "worker connected: worker=worker-2 ")
	})
	w1.kill9(t)
	// SIGKILL gives the worker no chance to stop its steps, but bubblewrap
	// runs with --die-with-parent: the kernel kills the sandbox when the
	// worker dies, and with it (its pid namespace ends) the step's shell
	// and sleep, which would otherwise sleep on for 41 seconds.
	waitFor(t, "the killed worker's sandboxed step to die with it", func() bool {
		for _, p := range sandbox {
			if p.alive() {
				return false
			}
		}
		return true
	})
	build.waitForLine(t, "retrying demo-sum: attempt 1 on worker-1 failed: ")
	r := build.wait(t, 60*time.Second)
	if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Fatalf("build: exit %d, want 0 and success after losing worker-1\n%s%s", r.code, r.stdout, r.stderr)
	}
	// demo-sum ran on worker-1 until it died, then on worker-2.
	lines := stepLines(r.stdout, "demo-sum")
	if len(lines) != 4 || lines[0] != "started  demo-sum on worker-1" || !strings.HasPrefix(lines[1], "retrying demo-sum: attempt 1 on worker-1 failed: ") ||
		lines[2] != "started  demo-sum on worker-2" || !strings.HasPrefix(lines[3], "finished demo-sum on worker-2 ") {
		t.Fatalf("demo-sum's story: %q; want started on worker-1, retried, started and finished on worker-2", lines)
	}
	if !strings.Contains(lines[1], "worker-1 was lost") {
		t.Errorf("the retry says %q; want it to say worker-1 was lost", lines[1])
	}
	id := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(r.stdout, "\n", 2)[0], "build "), " accepted")
	if st := f.initiator("status", id); !regexp.MustCompile(`(?m)^demo-sum\s+finished\s+worker-2\s+2\s`).MatchString(st.stdout) {
		t.Errorf("status: want demo-sum finished on worker-2 at its second attempt\n%s%s", st.stdout, st.stderr)
	}
	if n := f.jobsStarted()["demo-sum"]; n != 2 {
		t.Errorf("demo-sum started %d times on the workers, want twice (worker-1, then worker-2)", n)
	}
}

// waitForSleep waits until a worker's sandbox runs step's "sleep arg".
func (f *crashFarm) waitForSleep(t *testing.T, step, arg string) {
	t.Helper()
	waitFor(t, step+" to run", func() bool {
		for _, w := range f.workers {
			if sandboxOf(arg, w.cmd.Process.Pid) != nil {
				return true
			}
		}
		return false
	})
}

// TestAControllerKilledMidBuildResumesIt kills the controller with
// SIGKILL in the middle of a detached build and starts it again on the
// same address and state directory once a step that was running has
// finished meanwhile. The workers reconnect by themselves, the build
// carries on and succeeds, `initiator attach` shows its whole story, and no
// step that had finished ran again.
func TestAControllerKilledMidBuildResumesIt(t *testing.T) {
	f := startCrashFarm(t, []string{"worker-1", "worker-2"})
	const slow = "1.5"
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n", "kind: chunk\npre-build-commands:\n- sleep "+slow+"\n")
	graph := f.graph(demoSystem)
	id := f.detach(demoSystem)
	f.waitForSleep(t, "demo-sum", slow)
	finishedBefore := f.jobsDone()
	f.controllerProc.kill9(t)
	if len(finishedBefore) == 0 || finishedBefore["demo-sum"] != 0 {
		t.Fatalf("steps done before the kill: %v; want some, demo-sum not among them", finishedBefore)
	}
	// The controller stays down until demo-sum is done: its worker carries
	// on alone and stores the artifact, which the resumed build must count
	// as built (and not build again).
	waitFor(t, "demo-sum to finish while the controller is down", func() bool { return f.jobsDone()["demo-sum"] == 1 })
	f.restartController()

	// Workers reconnect with backoff (1s, 2s, 4s...): allow for it.
	r := f.startInitiator("attach", id).wait(t, 90*time.Second)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "build "+id+" accepted\n") || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Fatalf("attach after the restart: exit %d, want 0 and the story from acceptance to success\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stdout, " steps, "); n != 1 || !strings.Contains(r.stdout, fmt.Sprintf("\n%d steps, %d to build (0 already in the cache)\n", len(graph), len(graph))) {
		t.Errorf("the story announces the graph %d times, want once, with all %d steps to build", n, len(graph))
	}
	// The whole story: every step of the build started and finished in
	// it, those that finished while the controller was down included.
	for _, step := range keysOf(graph) {
		lines := stepLines(r.stdout, step)
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "started  "+step+" on worker-") || !strings.HasPrefix(lines[len(lines)-1], "finished "+step+" on worker-") {
			t.Errorf("the story of %s is %q; want it started and, last, finished", step, lines)
		}
	}
	started := f.jobsStarted()
	for step := range finishedBefore {
		if started[step] != 1 {
			t.Errorf("%s, done before the controller was killed, started %d times; want once", step, started[step])
		}
	}
	if started["demo-sum"] != 1 {
		t.Errorf("demo-sum, done while the controller was down, started %d times; want once", started["demo-sum"])
	}
	// Status agrees with the story: this build built every step (none was
	// in the cache when it was submitted), before the restart or after.
	st := f.initiator("status", id)
	if st.code != 0 || !strings.Contains(st.stdout, "state:     succeeded\n") {
		t.Errorf("status after the restart: exit %d, want the build succeeded\n%s%s", st.code, st.stdout, st.stderr)
	}
	for _, step := range keysOf(graph) {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(step) + `\s+finished\s+worker-\d\s+[1-9]\s`).MatchString(st.stdout) {
			t.Errorf("status after the restart does not show %s finished by the worker that built it:\n%s", step, st.stdout)
			break
		}
	}
}

// bigArtifact is the size of the file the trove test's chunk installs:
// random, so the uncompressed artifact is as large, and large enough that
// its upload is seen under way.
const bigArtifact = 300_000_000

// TestTheTroveKilledDuringAnUploadLeavesNoPartialBlob kills the trove
// with SIGKILL in the middle of a 300 MB upload. On disk, only complete
// blobs ever have their final names; the trove restarted on its ports
// deletes the unfinished upload, and the step, which failed for the farm's
// reason, is retried and the build succeeds.
func TestTheTroveKilledDuringAnUploadLeavesNoPartialBlob(t *testing.T) {
	f := startCrashFarm(t, []string{"worker-1", "worker-2"})
	f.change("strata/demo-base/demo-config.morph", "install-commands:\n",
		"install-commands:\n- mkdir -p \"$DESTDIR$PREFIX/share\" && head -c "+strconv.Itoa(bigArtifact)+" /dev/urandom >\"$DESTDIR$PREFIX/share/big\"\n")
	build := f.startInitiator("build", "--partial", "demo-config", demoSystem)

	// Uploads go to temporary files in the store's tmp directory, renamed
	// into blobs/ once complete and verified. Catch the big one under way
	// and freeze the trove there, so the test sees the partial file it
	// leaves behind, then kill it.
	tmp := filepath.Join(f.cacheDir(), "tmp")
	var partial string
	for deadline := time.Now().Add(60 * time.Second); partial == ""; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) || build.exited() {
			t.Fatalf("no upload of the big artifact was seen\n%s%s", build.stdout, build.stderr)
		}
		entries, _ := os.ReadDir(tmp)
		for _, e := range entries {
			if info, err := e.Info(); err == nil && info.Size() > 1<<20 {
				partial = filepath.Join(tmp, e.Name())
			}
		}
	}
	if err := f.troveProc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(partial)
	if err != nil || info.Size() >= bigArtifact {
		t.Fatalf("the frozen upload %s: %v, %v; want a partial file", partial, info, err)
	}
	f.troveProc.kill9(t)
	checkBlobs(t, f.cacheDir(), "after the kill")

	// The trove comes back on the same ports two seconds later, as under
	// a supervisor that restarts it after a pause. The worker whose upload
	// was cut off waits for the trove to store its log before reporting
	// the failure, so the retry finds the trove up; a worker that gave up
	// at once had all three attempts fail while the trove was down.
	time.Sleep(2 * time.Second)
	f.restartTrove()
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the restarted trove kept the unfinished upload %s: %v", partial, err)
	}
	checkBlobs(t, f.cacheDir(), "after the restart")

	r := build.wait(t, 90*time.Second)
	if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Fatalf("build: exit %d, want 0 once the trove is back\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := stepLines(r.stdout, "demo-config")
	retry := regexp.MustCompile(`^retrying demo-config: attempt 1 on worker-\d failed: uploading demo-config-misc: .* upload sha256:([0-9a-f]{64})/\d+: `)
	var m []string
	if len(lines) == 4 {
		m = retry.FindStringSubmatch(lines[1])
	}
	if m == nil || !strings.HasPrefix(lines[0], "started  demo-config on worker-") || !strings.HasPrefix(lines[2], "started  demo-config on worker-") || !strings.HasPrefix(lines[3], "finished demo-config on worker-") {
		t.Fatalf("demo-config's story: %q; want its first attempt failed in the upload, then a second that finished", lines)
	}
	if n := f.jobsStarted()["demo-config"]; n != 2 {
		t.Errorf("demo-config started %d times on the workers, want twice", n)
	}
	// The content whose upload was cut off never became a blob, partial
	// or whole: random, it differs from the second attempt's.
	if code := httpStatus(t, "http://"+f.http+"/blobs/sha256/"+m[1]); code != http.StatusNotFound {
		t.Errorf("GET the blob whose upload was cut off: status %d, want 404", code)
	}
	// The second attempt's artifact is served whole.
	if checkBlobs(t, f.cacheDir(), "after the build") == 0 {
		t.Fatal("no blobs in the store after the build")
	}
	key := regexp.MustCompile(`(?m)^  CHUNK demo-config ([0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
	if key == nil {
		t.Fatalf("the build did not report demo-config's cache key:\n%s", r.stdout)
	}
	var manifest pb.Manifest
	if err := protojson.Unmarshal(httpGet(t, "http://"+f.http+"/artifacts/"+key[1]), &manifest); err != nil {
		t.Fatal(err)
	}
	var big *pb.Digest
	for _, file := range manifest.Files {
		if file.Name == "demo-config-misc" {
			big = file.Digest
		}
	}
	if big == nil || big.SizeBytes <= bigArtifact {
		t.Fatalf("demo-config's manifest lists %v; want demo-config-misc holding the big file", manifest.Files)
	}
	resp, err := http.Get("http://" + f.http + "/blobs/sha256/" + big.Hash)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if resp.StatusCode != http.StatusOK || err != nil || n != big.SizeBytes || hex.EncodeToString(h.Sum(nil)) != big.Hash {
		t.Errorf("GET the big blob: %s, %d bytes, %v; want all %d bytes, hashing to its name", resp.Status, n, err, big.SizeBytes)
	}
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return body
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkBlobs fails the test unless every file under the store's blobs
// directory is complete: its content hashes to its name. It returns how
// many there are.
func checkBlobs(t *testing.T, store, when string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(store, "blobs", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != filepath.Base(path) {
			t.Errorf("%s: blob %s holds content hashing to %s: a partial or corrupt blob under a final name", when, path, got)
		}
	}
	return len(files)
}

// TestFiveInitiatorsBuildOverlappingSystemsOnce runs five initiators at
// once on systems sharing strata: demo-base alone, demo-base and
// demo-libs, all three strata with other artifact filters, and the demo
// system twice. All succeed, and every step (one cache key) runs once on
// the workers, however many builds want it.
func TestFiveInitiatorsBuildOverlappingSystemsOnce(t *testing.T) {
	f := startCrashFarm(t, []string{"worker-1", "worker-2"})
	f.addFiles(map[string]string{
		"systems/base-system.morph": "name: base-system\nkind: system\narch: x86_64\nstrata:\n" +
			"- name: demo-base\n  morph: strata/demo-base.morph\n",
		"systems/libs-system.morph": "name: libs-system\nkind: system\narch: x86_64\nstrata:\n" +
			"- name: demo-base\n  morph: strata/demo-base.morph\n" +
			"- name: demo-libs\n  morph: strata/demo-libs.morph\n",
		"systems/devel-system.morph": "name: devel-system\nkind: system\narch: x86_64\nstrata:\n" +
			"- name: demo-base\n  morph: strata/demo-base.morph\n  artifacts:\n  - -runtime\n" +
			"- name: demo-libs\n  morph: strata/demo-libs.morph\n  artifacts:\n  - -devel\n  - -runtime\n" +
			"- name: demo-apps\n  morph: strata/demo-apps.morph\n  artifacts:\n  - -runtime\n",
	})
	systems := []string{"systems/base-system.morph", "systems/libs-system.morph", "systems/devel-system.morph", demoSystem, demoSystem}

	// Step names stand for cache keys: the same name is the same key in
	// every system, so counting jobs by name counts them by key.
	keys := map[string]string{}
	for _, sys := range systems {
		for name, s := range f.graph(sys) {
			if k, ok := keys[name]; ok && k != s.CacheKey {
				t.Fatalf("step %s has key %s in %s and %s elsewhere", name, s.CacheKey, sys, k)
			}
			keys[name] = s.CacheKey
		}
	}

	builds := make([]*bgInitiator, len(systems))
	for i, sys := range systems {
		builds[i] = f.startInitiator("build", sys)
	}
	for i, b := range builds {
		r := b.wait(t, 90*time.Second)
		if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
			t.Errorf("initiator %d (%s): exit %d, want 0 and success\n%s%s", i, systems[i], r.code, r.stdout, r.stderr)
		}
	}
	// Nothing was in the cache, so every step ran: once, whether the
	// builds shared it while it ran or found it in the cache afterwards.
	started := f.jobsStarted()
	for _, name := range keysOf(keys) {
		if started[name] != 1 {
			t.Errorf("%s ran %d times for the five builds; want once", name, started[name])
		}
	}
	if len(started) != len(keys) {
		t.Errorf("the workers ran %v; want exactly the %d steps of the five systems", keysOf(started), len(keys))
	}
}

// addFiles adds files to the definitions in one commit and pushes it, as
// change does for an edit.
func (f *farm) addFiles(files map[string]string) {
	f.t.Helper()
	for name, content := range files {
		path := filepath.Join(f.defs, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
		f.git(f.defs, "add", name)
	}
	f.git(f.defs, "commit", "-q", "-m", "add systems")
	f.git(f.defs, "push", "-q", f.bare, "HEAD:master")
}

// TestAControllerKilledWhileAStepRunsAdoptsIt kills the controller with
// SIGKILL while a step runs and restarts it at once, before the step ends:
// the worker reconnects and reports the job, the restarted controller
// adopts it instead of running it again, and no step of the build starts
// twice.
func TestAControllerKilledWhileAStepRunsAdoptsIt(t *testing.T) {
	f := startCrashFarm(t, []string{"worker-1", "worker-2"})
	const slow = "6"
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n", "kind: chunk\npre-build-commands:\n- sleep "+slow+"\n")
	graph := f.graph(demoSystem)
	id := f.detach(demoSystem)
	f.waitForSleep(t, "demo-sum", slow)
	f.controllerProc.kill9(t)
	f.restartController()
	if done := f.jobsDone(); done["demo-sum"] != 0 {
		t.Fatalf("demo-sum finished before the controller was back; the test shows nothing (done: %v)", done)
	}

	r := f.startInitiator("attach", id).wait(t, 90*time.Second)
	if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Fatalf("attach after the restart: exit %d, want success\n%s%s", r.code, r.stdout, r.stderr)
	}
	started := f.jobsStarted()
	for _, step := range keysOf(graph) {
		if started[step] != 1 {
			t.Errorf("%s started %d times; want once: a job running across a restart is adopted, not run again", step, started[step])
		}
	}
	if !strings.Contains(f.log("controller"), "adopted a job from before the restart") {
		t.Errorf("the controller's log does not say it adopted demo-sum's job")
	}
}

// TestAStalledWorkersLateResultNeverWins stops a worker with SIGSTOP in
// the middle of a step, past its lease: the step moves to another worker.
// Continued while the retry still runs, the stalled worker finishes its
// abandoned attempt and stores it first; the retry's result replaces it,
// so the cached artifact is the one the build credits.
func TestAStalledWorkersLateResultNeverWins(t *testing.T) {
	f := startCrashFarm(t, []string{"worker-1"}, "--worker-lease", "2s")
	const stalled, retry = "3.5", "6.5"
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n",
		"kind: chunk\npre-build-commands:\n- case \"$PWD\" in */worker-1/*) sleep "+stalled+" ;; */worker-2/*) sleep "+retry+" ;; esac\n")
	graph := f.graph(demoSystem)
	w1 := f.workers["worker-1"]
	build := f.startInitiator("build", demoSystem)
	build.waitForLine(t, "started  demo-sum on worker-1")
	waitFor(t, "demo-sum's sleep to run on worker-1", func() bool { return sandboxOf(stalled, w1.cmd.Process.Pid) != nil })
	w2 := f.startWorker("worker-2")
	waitFor(t, "worker-2 to connect", func() bool {
		return strings.Contains(f.log("controller"), "worker connected: worker=worker-2 ")
	})
	if err := w1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	build.waitForLine(t, "started  demo-sum on worker-2")
	waitFor(t, "worker-1's abandoned command to end", func() bool { return sandboxOf(stalled, w1.cmd.Process.Pid) == nil })
	if sandboxOf(retry, w2.cmd.Process.Pid) == nil {
		t.Fatal("the retry on worker-2 is no longer running; the test cannot show the late result arriving first")
	}
	if err := w1.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker-1 to store its abandoned attempt first", func() bool {
		return regexp.MustCompile(`stored manifest: .*step=demo-sum .*worker=worker-1`).MatchString(f.log("trove"))
	})
	r := build.wait(t, 60*time.Second)
	if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Fatalf("build: exit %d, want success on worker-2\n%s%s", r.code, r.stdout, r.stderr)
	}
	if lines := stepLines(r.stdout, "demo-sum"); !strings.HasPrefix(lines[len(lines)-1], "finished demo-sum on worker-2 ") {
		t.Fatalf("demo-sum's story: %q; want it finished on worker-2", lines)
	}
	resp, err := http.Get("http://" + f.http + "/artifacts/" + graph["demo-sum"].CacheKey)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ Worker string }
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m.Worker != "worker-2" {
		t.Errorf("the cached demo-sum was made by %q (%v); want worker-2's, the attempt the build credits", m.Worker, err)
	}
}

// TestAWorkerStoppedWithSIGTERMFinishesItsStepFirst stops a worker with
// SIGTERM in the middle of a step: it drains, finishing and reporting the
// step (which does not run again elsewhere) and taking no new ones, then
// exits 0.
func TestAWorkerStoppedWithSIGTERMFinishesItsStepFirst(t *testing.T) {
	f := startCrashFarm(t, []string{"worker-1"})
	const slow = "2.5"
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n",
		"kind: chunk\npre-build-commands:\n- case \"$PWD\" in */worker-1/*) sleep "+slow+" ;; esac\n")
	w1 := f.workers["worker-1"]
	build := f.startInitiator("build", demoSystem)
	build.waitForLine(t, "started  demo-sum on worker-1")
	waitFor(t, "demo-sum's sleep to run on worker-1", func() bool { return sandboxOf(slow, w1.cmd.Process.Pid) != nil })
	if err := w1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f.startWorker("worker-2")
	select {
	case <-w1.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the drained worker did not exit")
	}
	if code := w1.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the drained worker exited %d, want 0", code)
	}
	r := build.wait(t, 60*time.Second)
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if lines := stepLines(r.stdout, "demo-sum"); len(lines) != 2 || !strings.HasPrefix(lines[1], "finished demo-sum on worker-1 ") {
		t.Errorf("demo-sum's story: %q; want it started and finished on worker-1, which was draining", lines)
	}
	if n := f.jobsStarted()["demo-sum"]; n != 1 {
		t.Errorf("demo-sum started %d times, want once", n)
	}
	if !strings.Contains(f.log("worker-1"), "drained: every job finished and reported") {
		t.Errorf("worker-1's log does not say it drained")
	}
}
