package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"distbuild/definitions/definitionstest"
	"distbuild/internal/gittest"
	pb "distbuild/proto/distbuild/v1"
)

// sleepDAG is a small build: a chain of slow steps plus many short
// independent ones, the shape where the order ready steps start in decides
// the wall time.
type sleepStep struct {
	name    string
	seconds float64
	deps    []string
}

func sleepDAG() []sleepStep {
	var steps []sleepStep
	for i := range 4 {
		s := sleepStep{name: fmt.Sprintf("chain-%d", i), seconds: 1.5}
		if i > 0 {
			s.deps = []string{fmt.Sprintf("chain-%d", i-1)}
		}
		steps = append(steps, s)
	}
	for i := range 16 {
		steps = append(steps, sleepStep{name: fmt.Sprintf("leaf-%02d", i), seconds: 0.5})
	}
	return steps
}

// writeSleepDefinitions commits definitions for the DAG (every chunk built
// from the same tiny source repository) and returns the checkout.
func writeSleepDefinitions(t testing.TB, dir, sourceRepo, commit, salt string, steps []sleepStep) string {
	defs := filepath.Join(dir, "definitions")
	var stratum strings.Builder
	stratum.WriteString("name: sleeps\nkind: stratum\nchunks:\n")
	for _, s := range steps {
		fmt.Fprintf(&stratum, "- name: %s\n  repo: %s\n  ref: %s\n  build-mode: bootstrap\n  morph: strata/sleeps/%s.morph\n", s.name, sourceRepo, commit, s.name)
		if len(s.deps) > 0 {
			fmt.Fprintf(&stratum, "  build-depends: [%s]\n", strings.Join(s.deps, ", "))
		}
	}
	files := map[string]string{
		"VERSION":              "version: 8\n",
		"strata/sleeps.morph":  stratum.String(),
		"systems/sleeps.morph": "name: sleeps-system\nkind: system\narch: x86_64\nstrata:\n- morph: strata/sleeps.morph\n",
	}
	for _, s := range steps {
		files["strata/sleeps/"+s.name+".morph"] = fmt.Sprintf("name: %s\nkind: chunk\nbuild-commands:\n- sleep %g # %s\n", s.name, s.seconds, salt)
	}
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	if err := definitionstest.WriteDir(defs, fsys); err != nil {
		t.Fatal(err)
	}
	return defs
}

// BenchmarkMakespanRealFarm runs the sleep DAG through the real farm (two
// workers with two slots each) and, side by side, through make -j4 with the
// same DAG as a Makefile, and reports both wall times and their ratio: the
// farm's overhead over the ideal local scheduler.
func BenchmarkMakespanRealFarm(b *testing.B) {
	f := startSleepFarm(b, 2, 2, "none")
	steps := sleepDAG()
	var farmTime, makeTime time.Duration
	for b.Loop() {
		farmTime += f.build(b, steps)
		b.StopTimer()
		makeTime += runMake(b, f.dir, steps)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(farmTime.Seconds()/n, "farm-s")
	b.ReportMetric(makeTime.Seconds()/n, "make-j4-s")
	b.ReportMetric(farmTime.Seconds()/makeTime.Seconds(), "farm/make")
}

// sleepFarm is a real farm (a trove, a controller, and workers w1, w2...)
// that builds DAGs of chunks all made from one tiny source repository.
type sleepFarm struct {
	*farm
	source, commit string
	runs           int
}

// startSleepFarm starts the farm with workers workers, each with slots
// slots and the sandbox given.
func startSleepFarm(b *testing.B, workers, slots int, sandbox string) *sleepFarm {
	dir := b.TempDir()
	source := filepath.Join(dir, "source")
	os.MkdirAll(source, 0o755)
	os.WriteFile(filepath.Join(source, "README"), []byte("nothing to build\n"), 0o644)
	gittest.Run(b, source, "init", "-q")
	gittest.Run(b, source, "add", "-A")
	gittest.Run(b, source, "commit", "-q", "-m", "source")
	f := &farm{t: b, dir: dir, logs: map[string]*bytes.Buffer{}}
	f.cache = f.daemon("trove", "serve", "--dir", filepath.Join(dir, "cache"), "--listen", "127.0.0.1:0", "--http-listen", "")["grpc"]
	f.startController("--state-dir", filepath.Join(dir, "controller"), "--cache", f.cache)
	for i := range workers {
		w := fmt.Sprintf("w%d", i+1)
		f.start(w, "worker", "--name", w, "--slots", strconv.Itoa(slots), "--controller", f.workerAddr, "--cache", f.cache,
			"--work-dir", filepath.Join(dir, w), "--sandbox", sandbox)
	}
	return &sleepFarm{farm: f, source: source, commit: gittest.Run(b, source, "rev-parse", "HEAD")}
}

// build commits definitions of steps, salted with the run's number so that
// every key is new, and times `initiator build` of them (the commit is not
// timed). The benchmark's timer is running before and after.
func (f *sleepFarm) build(b *testing.B, steps []sleepStep) time.Duration {
	return f.buildWith(b, "systems/sleeps.morph", func(salt string) string {
		return writeSleepDefinitions(b, f.dir, f.source, f.commit, salt, steps)
	})
}

// buildWith is build with definitions of another shape: write writes them,
// salted with salt, and returns the checkout; system is the system to build.
func (f *sleepFarm) buildWith(b *testing.B, system string, write func(salt string) string) time.Duration {
	b.StopTimer()
	f.defs = write("run " + strconv.Itoa(f.runs))
	if f.runs == 0 {
		gittest.Run(b, f.defs, "init", "-q")
		gittest.Run(b, f.defs, "remote", "add", "origin", f.defs)
	}
	f.runs++
	gittest.Run(b, f.defs, "add", "-A")
	gittest.Run(b, f.defs, "commit", "-q", "-m", "run")
	b.StartTimer()
	start := time.Now()
	r := f.initiator("build", system)
	took := time.Since(start)
	if r.code != 0 {
		b.Fatalf("farm build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return took
}

// runMake runs the DAG as a Makefile with make -j4 and times it.
func runMake(b *testing.B, dir string, steps []sleepStep) time.Duration {
	var mk strings.Builder
	var all []string
	for _, s := range steps {
		all = append(all, s.name)
		fmt.Fprintf(&mk, "%s: %s\n\tsleep %g\n", s.name, strings.Join(s.deps, " "), s.seconds)
	}
	mk.WriteString(".PHONY: all " + strings.Join(all, " ") + "\nall: " + strings.Join(all, " ") + "\n")
	path := filepath.Join(dir, "Makefile")
	if err := os.WriteFile(path, []byte("default: all\n"+mk.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command("make", "-s", "-j4", "-f", path).CombinedOutput(); err != nil {
		b.Fatalf("make: %v\n%s", err, out)
	}
	return time.Since(start)
}

// BenchmarkControllerMemory measures the real controller binary's peak RSS
// while it holds a 10,000-step build with 100 connected workers, each
// holding its jobs. Target: under 200 MiB.
func BenchmarkControllerMemory(b *testing.B) {
	dir := b.TempDir()
	tree := definitionstest.Generate(definitionstest.Config{Strata: 100, Chunks: 10000, Seed: 9})
	defs := filepath.Join(dir, "definitions")
	if err := definitionstest.WriteDir(defs, tree.FS); err != nil {
		b.Fatal(err)
	}
	gittest.Run(b, defs, "init", "-q")
	gittest.Run(b, defs, "add", "-A")
	gittest.Run(b, defs, "commit", "-q", "-m", "definitions")
	commit := gittest.Run(b, defs, "rev-parse", "HEAD")
	f := &farm{t: b, dir: dir, logs: map[string]*bytes.Buffer{}}
	f.cache = f.daemon("trove", "serve", "--dir", filepath.Join(dir, "cache"), "--listen", "127.0.0.1:0", "--http-listen", "")["grpc"]
	f.startController("--state-dir", filepath.Join(dir, "controller"), "--cache", f.cache, "--trove-git", "file:///nonexistent")
	pid := f.pids["controller"]
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		return conn
	}
	conn, workerConn := dial(f.controller), dial(f.workerAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan int, 100)
	for i := range 100 {
		stream, err := pb.NewWorkerServiceClient(workerConn).Work(ctx)
		if err != nil {
			b.Fatal(err)
		}
		stream.Send(&pb.WorkRequest{Message: &pb.WorkRequest_Register{Register: &pb.WorkerRegistration{Name: fmt.Sprintf("fake-%03d", i), Slots: 4, Arch: "x86_64"}}})
		go func() {
			jobs := 0
			for {
				resp, err := stream.Recv()
				if err != nil {
					return
				}
				if len(resp.Start) > 0 {
					jobs += len(resp.Start)
					held <- jobs
				}
			}
		}()
	}
	for b.Loop() {
		build, err := pb.NewBuildServiceClient(conn).Build(ctx)
		if err != nil {
			b.Fatal(err)
		}
		build.Send(&pb.BuildRequest{Request: &pb.BuildRequest_Start{Start: &pb.StartBuild{RepoUrl: defs, Commit: commit, MorphologyPath: tree.FullSystem, Detach: true}}})
		for {
			resp, err := build.Recv()
			if err != nil {
				b.Fatalf("build stream: %v", err)
			}
			if gr := resp.Event.GetGraphResolved(); gr != nil {
				if gr.TotalSteps < 10000 {
					b.Fatalf("the graph has only %d steps", gr.TotalSteps)
				}
				break
			}
			if resp.Event.GetBuildFailed() != nil {
				b.Fatalf("build failed: %s", resp.Event.GetBuildFailed().Reason)
			}
		}
		// Wait until the workers hold jobs: the graph is scheduled.
		select {
		case <-held:
		case <-time.After(60 * time.Second):
			b.Fatal("no worker received a job")
		}
	}
	peak := float64(procStatusKiB(b, pid, "VmHWM")) / 1024
	b.ReportMetric(peak, "peak-RSS-MiB")
	b.ReportMetric(float64(procStatusKiB(b, pid, "VmRSS"))/1024, "RSS-MiB")
	// Memory, unlike speed, does not depend on what else the machine
	// runs: the bound holds in every run, make test's included. Keeping a
	// list of every step's staging closure once took this to 850 MiB.
	if peak > controllerMemoryBound {
		b.Errorf("the controller peaked at %.0f MiB holding a 10,000-step build; the bound is %d MiB", peak, controllerMemoryBound)
	}
}

// controllerMemoryBound is the most a controller may hold, in MiB, for a
// 10,000-step build with 100 workers connected.
const controllerMemoryBound = 200

func procStatusKiB(b *testing.B, pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kib
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
