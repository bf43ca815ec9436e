package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// netFarm is a farm whose daemons run on hosts of a netLab: the trove,
// the controller and each worker in a network namespace of its own, the
// initiator in another, all reaching each other by host name over TLS.
type netFarm struct {
	*farm
	lab   *netLab
	ca    string
	procs map[string]*proc
	env   []string // for every process: GIT_SSL_CAINFO
}

// spawn starts a binary on a host (ip netns exec, which execs it: the
// process's pid is the daemon's) until the test ends.
func (f *netFarm) spawn(host, bin string, args ...string) *proc {
	f.t.Helper()
	cmd := f.lab.command(host, filepath.Join(binDir, bin), args...)
	cmd.Env = append(os.Environ(), f.env...)
	buf := &bytes.Buffer{}
	f.logMu.Lock()
	f.logs[host] = buf
	f.logMu.Unlock()
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &f.logMu, w: buf}, &lockedWriter{mu: &f.logMu, w: buf}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &proc{name: host, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	f.procs[host] = p
	f.t.Cleanup(func() {
		if !p.exited() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-p.done
			}
		}
		if f.t.Failed() {
			f.t.Logf("--- %s log ---\n%s", host, f.log(host))
		}
	})
	return p
}

// waitListening waits for a daemon's --addr-file.
func (f *netFarm) waitListening(p *proc, addrFile string) {
	f.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !p.exited(); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(addrFile); err == nil {
			return
		}
	}
	f.t.Fatalf("%s did not start:\n%s", p.name, f.log(p.name))
}

// initiator runs `initiator ARGS` on the initiator host, in the
// definitions checkout, in the background.
func (f *netFarm) startInitiator(args ...string) *bgInitiator {
	f.t.Helper()
	cmd := f.lab.command("initiator", filepath.Join(binDir, "initiator"), args...)
	cmd.Dir = f.defs
	cmd.Env = append(os.Environ(), f.env...)
	cmd.Env = append(cmd.Env, "DISTBUILD_CONTROLLER=controller:7878", "DISTBUILD_CACHE=trove:7070",
		"DISTBUILD_TLS_CA="+f.ca, "DISTBUILD_TLS_CERT="+f.cert("initiator"), "DISTBUILD_TLS_KEY="+f.key("initiator"))
	return startInBackground(f.t, cmd)
}

func (f *netFarm) cert(host string) string { return filepath.Join(f.dir, "tls", host+".pem") }
func (f *netFarm) key(host string) string  { return filepath.Join(f.dir, "tls", host+".key") }

// startNetFarm makes the hosts and starts the trove, the controller (with
// the given extra flags) and two workers on them.
func startNetFarm(t *testing.T, controllerFlags ...string) *netFarm {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap is not installed: the workers sandbox steps with it (apt-get install bubblewrap)")
	}
	lab := newNetLab(t, "trove", "controller", "worker1", "worker2", "initiator")
	lab.link("controller", "trove")
	lab.writeHosts()
	f := &netFarm{farm: &farm{t: t, dir: t.TempDir(), logs: map[string]*bytes.Buffer{}}, lab: lab, procs: map[string]*proc{}}
	if err := os.Mkdir(filepath.Join(f.dir, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.ca = farmCerts(t, filepath.Join(f.dir, "tls"), lab.hosts...)
	f.env = []string{"GIT_SSL_CAINFO=" + f.ca}

	repoRoot, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(repoRoot, "demo", "make-trove.sh"), filepath.Join(f.dir, "trove")).CombinedOutput(); err != nil {
		t.Fatalf("make-trove.sh: %v\n%s", err, out)
	}
	f.defs = filepath.Join(f.dir, "trove", "definitions")
	f.bare = filepath.Join(f.dir, "trove", "git", "baserock", "definitions.git")
	f.git(f.defs, "remote", "set-url", "origin", "https://trove:7080/git/baserock/definitions.git")

	// The trove answers on all its addresses: the LAN and its link to
	// the controller. The controller binds its LAN address, by name.
	addrFile := filepath.Join(f.dir, "trove.addr")
	f.waitListening(f.spawn("trove", "trove", "serve", "--dir", filepath.Join(f.dir, "cache"), "--git-dir", filepath.Join(f.dir, "trove", "git"),
		"--listen", "0.0.0.0:7070", "--http-listen", "0.0.0.0:7080", "--tls-cert", f.cert("trove"), "--tls-key", f.key("trove"),
		"--addr-file", addrFile), addrFile)
	addrFile = filepath.Join(f.dir, "controller.addr")
	f.waitListening(f.spawn("controller", "controller", append([]string{"--state-dir", filepath.Join(f.dir, "controller"),
		"--listen", "controller:7878", "--worker-listen", "controller:7877", "--http-listen", "controller:7879",
		"--tls-cert", f.cert("controller"), "--tls-key", f.key("controller"), "--tls-client-ca", f.ca,
		"--cache", "trove:7070", "--cache-tls-ca", f.ca, "--trove-git", "https://trove:7080/git",
		"--addr-file", addrFile}, controllerFlags...)...), addrFile)
	for _, w := range []string{"worker1", "worker2"} {
		f.spawn(w, "worker", "--name", w, "--slots", "2", "--work-dir", filepath.Join(f.dir, w), "--sandbox", "bwrap",
			"--controller", "controller:7877", "--tls-ca", f.ca, "--tls-cert", f.cert(w), "--tls-key", f.key(w),
			"--cache", "trove:7070", "--cache-tls-ca", f.ca)
	}
	for _, w := range []string{"worker1", "worker2"} {
		waitFor(t, w+" to connect", func() bool {
			return strings.Contains(f.log("controller"), "worker connected: worker="+w+" ")
		})
	}
	return f
}

// TestAFarmAcrossNetworkHosts runs the farm as separate hosts: the trove,
// the controller, two workers and an initiator each in a network
// namespace of its own, joined by a bridge, reaching each other by host
// name with TLS certificates for those names (mTLS to the controller),
// and the controller reaching the trove over a link of its own. It builds
// the demo system from the initiator host; pulls a worker's cable in the
// middle of a step, so the step moves to the other worker once the lease
// runs out, and the first worker's result, arriving once the cable is
// back, is not the one kept; then cuts the controller off from the trove
// while a build is submitted (the build fails saying so) and builds again
// once the link is back.
//
// It needs root and ip(8), and skips, saying so, without them. Run it
// alone with: go test -run TestAFarmAcrossNetworkHosts -v ./e2e
func TestAFarmAcrossNetworkHosts(t *testing.T) {
	const lease = 3 * time.Second
	f := startNetFarm(t, "--worker-lease", lease.String(), "--cache-timeout", "5s")
	start := time.Now()

	// 1. The demo system, built from the initiator's host.
	r := f.startInitiator("build", demoSystem).wait(t, 90*time.Second)
	if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Fatalf("build from the initiator host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	onBoth := map[string]bool{}
	for _, w := range r.started() {
		onBoth[w] = true
	}
	t.Logf("built the demo system across the hosts in %s (steps on %v)", time.Since(start).Round(time.Millisecond), keysOf(onBoth))

	// 2. A worker's cable pulled mid-step. demo-sum sleeps wherever it
	// runs; whichever worker starts it loses its link (its bridge port
	// goes down: its packets vanish, nothing tells either side).
	const slow = "6.25"
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n", "kind: chunk\npre-build-commands:\n- sleep "+slow+"\n")
	graph := f.graph(demoSystem)
	partStart := time.Now()
	build := f.startInitiator("build", demoSystem)
	var first string
	waitFor(t, "demo-sum to start", func() bool {
		m := regexp.MustCompile(`(?m)^started  demo-sum on (worker\d)$`).FindStringSubmatch(build.stdout.String())
		if m != nil {
			first = m[1]
		}
		return m != nil
	})
	other := map[string]string{"worker1": "worker2", "worker2": "worker1"}[first]
	waitFor(t, "demo-sum's sleep to run on "+first, func() bool { return sandboxOf(slow, f.procs[first].cmd.Process.Pid) != nil })
	f.lab.setLink("lan", first, false)
	cut := time.Now()
	build.waitForLine(t, "started  demo-sum on "+other)
	t.Logf("%s cut off; demo-sum moved to %s after %s (lease %s)", first, other, time.Since(cut).Round(time.Millisecond), lease)
	// The cut-off worker's command ends; its result cannot leave.
	waitFor(t, first+"'s abandoned command to end", func() bool { return sandboxOf(slow, f.procs[first].cmd.Process.Pid) == nil })
	f.lab.setLink("lan", first, true)
	// Its late result reaches the trove once the cable is back: stored
	// while the retry still runs (and replaced by it), or refused if the
	// retry's came first. Either way the retry's is kept.
	lateRE := regexp.MustCompile(`stored manifest: .*step=demo-sum .*worker=` + first + `|a later attempt's result .* is already stored`)
	waitFor(t, first+"'s late result to reach the trove", func() bool {
		return lateRE.MatchString(f.log("trove")) || lateRE.MatchString(f.log(first))
	})
	r = build.wait(t, 60*time.Second)
	if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Fatalf("build with %s cut off: exit %d, want success on %s\n%s%s", first, r.code, r.stdout, r.stderr, other)
	}
	if strings.Contains(f.log("trove"), "a later attempt's manifest replaces an abandoned one's") {
		t.Logf("%s's late manifest reached the trove first and was replaced by %s's", first, other)
	} else {
		t.Logf("%s's late manifest was refused: %s's was already stored", first, other)
	}
	lines := stepLines(r.stdout, "demo-sum")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "retrying demo-sum: attempt 1 on "+first+" failed: ") ||
		lines[2] != "started  demo-sum on "+other || !strings.HasPrefix(lines[3], "finished demo-sum on "+other+" ") {
		t.Errorf("demo-sum's story: %q; want it started on %s, retried and finished on %s", lines, first, other)
	}
	var m struct{ Worker string }
	if err := json.Unmarshal(f.get("https://trove:7080/artifacts/"+graph["demo-sum"].CacheKey), &m); err != nil || m.Worker != other {
		t.Errorf("the trove's demo-sum was made by %q (%v); want %s's, the attempt the build credits", m.Worker, err, other)
	}
	t.Logf("the build with %s cut off took %s", first, time.Since(partStart).Round(time.Millisecond))

	// 3. The controller cut off from the trove (its link to the trove
	// down; the initiator and the workers still reach it) while a build
	// is submitted: the build fails, naming the cache that did not
	// answer; once the link is back the same build succeeds.
	f.lab.setLink("controller", "to-trove", false)
	cut = time.Now()
	r = f.startInitiator("build", demoSystem).wait(t, 60*time.Second)
	if r.code != 1 || !strings.Contains(r.stdout, "build failed: ") || !strings.Contains(r.stdout+r.stderr, "the artifact cache at trove:7070 did not answer within") {
		t.Errorf("build with the controller cut off from the trove: exit %d, want 1 and a failure naming the artifact cache\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("cut off from the trove, the build failed after %s:\n%s%s", time.Since(cut).Round(time.Millisecond), r.stdout, r.stderr)
	f.lab.setLink("controller", "to-trove", true)
	healed := time.Now()
	r = f.startInitiator("build", demoSystem).wait(t, 60*time.Second)
	if r.code != 0 || !strings.Contains(r.stdout, "\nbuild succeeded in ") {
		t.Errorf("build once the link is back: exit %d, want success\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("the link back, the same build succeeded in %s", time.Since(healed).Round(time.Millisecond))
}

// get fetches a URL of the trove's HTTP API from the initiator's host.
func (f *netFarm) get(url string) []byte {
	f.t.Helper()
	resp, err := f.lab.httpClient("initiator", f.ca).Get(url)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil || resp.StatusCode != 200 {
		f.t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return buf.Bytes()
}
