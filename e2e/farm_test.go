package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"distbuild/internal/gittest"
)

// binDir holds the binaries built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "distbuild-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "distbuild/cmd/...")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// farm is a running trove, controller and workers.
type farm struct {
	t          testing.TB
	dir        string
	cache      string // trove gRPC address
	http       string // trove HTTP address
	controller string // the controller's address for initiators
	workerAddr string // the controller's address for workers
	dashboard  string // the controller's HTTP address: dashboard, metrics, JSON API
	defs       string // the definitions checkout
	bare       string // the definitions repository the trove serves
	logs       map[string]*bytes.Buffer
	logMu      sync.Mutex
	pids       map[string]int // daemons and workers by name
}

func startFarm(t *testing.T, workers ...string) *farm {
	t.Helper()
	return startFarmWith(t, nil, workers...)
}

// startFarmWith starts a farm whose controller also gets controllerArgs.
func startFarmWith(t *testing.T, controllerArgs []string, workers ...string) *farm {
	t.Helper()
	f := newFarm(t)
	addrs := f.daemon("trove", "serve", "--dir", filepath.Join(f.dir, "cache"), "--git-dir", filepath.Join(f.dir, "trove", "git"),
		"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	f.cache, f.http = addrs["grpc"], addrs["http"]
	f.git(f.defs, "remote", "set-url", "origin", "http://"+f.http+"/git/baserock/definitions.git")
	f.startController(append([]string{"--state-dir", filepath.Join(f.dir, "controller"), "--cache", f.cache, "--trove-git", "http://" + f.http + "/git"}, controllerArgs...)...)
	for _, w := range workers {
		f.start(w, "worker", "--name", w, "--slots", "2", "--controller", f.workerAddr, "--cache", f.cache,
			"--work-dir", filepath.Join(f.dir, w), "--sandbox", "bwrap")
	}
	return f
}

// newFarm prepares a farm with nothing running yet: the demo's trove of
// git repositories and the definitions checkout.
func newFarm(t *testing.T) *farm {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bubblewrap is not installed: the workers sandbox steps with it (apt-get install bubblewrap)")
	}
	f := &farm{t: t, dir: t.TempDir(), logs: map[string]*bytes.Buffer{}}
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
	return f
}

// start runs a binary in the background for the rest of the test.
func (f *farm) start(name, bin string, args ...string) {
	f.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	buf := &bytes.Buffer{}
	f.logMu.Lock()
	f.logs[name] = buf
	f.logMu.Unlock()
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &f.logMu, w: buf}, &lockedWriter{mu: &f.logMu, w: buf}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.logMu.Lock()
	if f.pids == nil {
		f.pids = map[string]int{}
	}
	f.pids[name] = cmd.Process.Pid
	f.logMu.Unlock()
	f.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if f.t.Failed() {
			f.t.Logf("--- %s log ---\n%s", name, f.log(name))
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *farm) log(name string) string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logs[name].String()
}

// startController starts the controller with its listeners for initiators
// and for workers on free ports.
func (f *farm) startController(args ...string) {
	f.t.Helper()
	addrs := f.daemon("controller", append(args, "--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")...)
	f.controller, f.workerAddr, f.dashboard = addrs["grpc"], addrs["worker"], addrs["http"]
}

// daemon starts a daemon with --addr-file and returns the addresses it
// wrote once listening.
func (f *farm) daemon(name string, args ...string) map[string]string {
	f.t.Helper()
	return f.daemonAs(name, name, args...)
}

// daemonAs is daemon for a binary run under a name of its own, so that a
// farm can run two troves or two controllers.
func (f *farm) daemonAs(name, bin string, args ...string) map[string]string {
	f.t.Helper()
	addrFile := filepath.Join(f.dir, name+".addr")
	f.start(name, bin, append(args, "--addr-file", addrFile)...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(addrFile); err == nil {
			addrs := map[string]string{}
			if err := json.Unmarshal(data, &addrs); err != nil {
				f.t.Fatalf("%s wrote a bad address file: %v", name, err)
			}
			return addrs
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("%s did not start:\n%s", name, f.log(name))
	return nil
}

func (f *farm) git(dir string, args ...string) string {
	f.t.Helper()
	return gittest.Run(f.t, dir, args...)
}

// change edits a file of the definitions, commits and pushes it (to the
// bare repository the trove serves, since the trove refuses pushes).
func (f *farm) change(file, old, new string) {
	f.t.Helper()
	path := filepath.Join(f.defs, file)
	data, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		f.t.Fatalf("%q not in %s", old, file)
	}
	if err := os.WriteFile(path, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.git(f.defs, "commit", "-q", "-am", "change "+file)
	f.git(f.defs, "push", "-q", f.bare, "HEAD:master")
}

// add writes new files into the definitions, commits and pushes them.
func (f *farm) add(files map[string]string) {
	f.t.Helper()
	for name, content := range files {
		path := filepath.Join(f.defs, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
		f.git(f.defs, "add", name)
	}
	f.git(f.defs, "commit", "-q", "-m", "add "+strings.Join(keysOf(files), ", "))
	f.git(f.defs, "push", "-q", f.bare, "HEAD:master")
}

// result is one finished initiator run.
type result struct {
	code           int
	stdout, stderr string
}

// initiator runs the real initiator in the definitions checkout.
func (f *farm) initiator(args ...string) result {
	f.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "initiator"), args...)
	cmd.Dir = f.defs
	cmd.Env = append(os.Environ(), "DISTBUILD_CONTROLLER="+f.controller, "DISTBUILD_CACHE="+f.cache)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

var startedRE = regexp.MustCompile(`(?m)^started  (\S+) on (\S+)$`)

// started lists the steps a build's output says were started, and by whom.
func (r result) started() map[string]string {
	out := map[string]string{}
	for _, m := range startedRE.FindAllStringSubmatch(r.stdout, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// graphStep is one step of `initiator graph --format=json`.
type graphStep struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	Arch      string   `json:"arch"`
	CacheKey  string   `json:"cache_key"`
	DependsOn []string `json:"depends_on"`
}

func (f *farm) graph(system string) map[string]graphStep {
	f.t.Helper()
	r := f.initiator("graph", "--format=json", system)
	if r.code != 0 {
		f.t.Fatalf("initiator graph: %s", r.stderr)
	}
	var doc struct{ Steps []graphStep }
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		f.t.Fatal(err)
	}
	out := map[string]graphStep{}
	for _, s := range doc.Steps {
		out[s.Name] = s
	}
	return out
}

// closure is the named steps and everything they depend on.
func closure(g map[string]graphStep, names ...string) map[string]bool {
	out := map[string]bool{}
	var add func(string)
	add = func(n string) {
		if out[n] {
			return
		}
		out[n] = true
		for _, d := range g[n].DependsOn {
			add(d)
		}
	}
	for _, n := range names {
		add(n)
	}
	return out
}

func keysOf[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
