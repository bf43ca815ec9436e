package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"distbuild/definitions"
	"distbuild/definitions/definitionstest"
	"distbuild/notify"
	pb "distbuild/proto/distbuild/v1"
)

func treeFiles(tree *definitionstest.Tree) map[string]string {
	files := map[string]string{}
	for name, f := range tree.FS {
		files[name] = string(f.Data)
	}
	return files
}

// BenchmarkNullBuild submits the generated 450-chunk system when every
// artifact is already in the cache, and measures submit to BuildFinished:
// fetching nothing new, reading the definitions out of git, resolving every
// cache key, one FindMissing call, and the events. Target: under 200 ms.
func BenchmarkNullBuild(b *testing.B) {
	tree := definitionstest.Generate(definitionstest.Realistic)
	f := startFarmWith(b, 30*time.Second, treeFiles(tree))
	ctx := context.Background()
	defs, err := definitions.Open(tree.FS)
	if err != nil {
		b.Fatal(err)
	}
	g, err := defs.Resolve(ctx, tree.SubsetSystem, definitions.CommitsOnly{})
	if err != nil {
		b.Fatal(err)
	}
	blob, err := f.cache.UploadBytes(ctx, []byte("artifact"))
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range g.Steps {
		m := &pb.Manifest{CacheKey: s.CacheKey.String(), StepName: s.Name, Files: []*pb.ManifestFile{{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: blob.Proto()}}}
		if err := f.cache.PutManifest(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	want := fmt.Sprintf("accepted resolved(0/%d) BUILD-FINISHED", len(g.Steps))
	f.start(tree.SubsetSystem).wait() // warm the definitions mirror
	for b.Loop() {
		if got := describe(f.start(tree.SubsetSystem).wait()); got != want {
			b.Fatalf("null build: %s, want %s", got, want)
		}
	}
	b.ReportMetric(float64(len(g.Steps)), "steps")
}

// BenchmarkDispatch runs 2,000 no-op chunk steps (plus their strata) on two
// workers with four slots each and reports the throughput in steps per
// second and, per step, the time from becoming ready (its last dependency
// reported done) to arriving at a worker: p50/p99 "ready" including the wait
// for a free slot, and "dispatch" counting only from when both the step was
// ready and a slot of that worker was free. Target: at least 1,000 steps/s.
func BenchmarkDispatch(b *testing.B) { benchmarkDispatch(b) }

// BenchmarkDispatchWithHooks is BenchmarkDispatch with a hook on every
// farm event (it runs true): notifications are written with the events
// and delivered off the dispatch path, so the figures should not move.
func BenchmarkDispatchWithHooks(b *testing.B) {
	h, err := notify.ParseHook("*=true", time.Minute, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkDispatch(b, h)
}

func benchmarkDispatch(b *testing.B, hooks ...notify.Target) {
	tree := definitionstest.Generate(definitionstest.Config{Strata: 20, Chunks: 2000, Seed: 3})
	files := treeFiles(tree)
	f := startFarmWith(b, 30*time.Second, files)
	if len(hooks) > 0 {
		f.withNotify(hooks...)
	}
	ctx := context.Background()
	blob, err := f.cache.UploadBytes(ctx, []byte("log"))
	if err != nil {
		b.Fatal(err)
	}
	var ready, dispatch, onWorker []time.Duration
	var steps, runs int
	var elapsed, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		// A new ref for the first bootstrap chunk changes every key, so
		// each round builds everything again.
		runs++
		stratum := files["strata/build-essential.morph"]
		i := strings.Index(stratum, "ref: ") + len("ref: ")
		files["strata/build-essential.morph"] = stratum[:i] + fmt.Sprintf("%040x", runs) + stratum[i+40:]
		f.commit = f.commitDefinitions(map[string]string{"strata/build-essential.morph": files["strata/build-essential.morph"]})
		defs, err := definitions.Open(mapFS(files))
		if err != nil {
			b.Fatal(err)
		}
		g, err := defs.Resolve(ctx, tree.FullSystem, definitions.CommitsOnly{})
		if err != nil {
			b.Fatal(err)
		}
		workers := []*testWorker{f.noopWorker(fmt.Sprintf("a%d", runs), 4, blob.Proto()), f.noopWorker(fmt.Sprintf("b%d", runs), 4, blob.Proto())}
		b.StartTimer()
		start, cpuStart := time.Now(), processCPU(b)
		bw := f.start(tree.FullSystem)
		var resolvedAt time.Time
		for {
			ev := bw.next()
			if ev.GetGraphResolved() != nil {
				resolvedAt = time.Now()
				break
			}
		}
		events := bw.wait()
		took := time.Since(start)
		cpu += processCPU(b) - cpuStart
		b.StopTimer()
		if !strings.HasSuffix(describe(events), "BUILD-FINISHED") {
			b.Fatalf("dispatch build failed: %s", describe(events[len(events)-1:]))
		}
		steps += len(g.Steps) - 1
		elapsed += took
		r, d, w := latencies(g, workers, resolvedAt)
		ready, dispatch, onWorker = append(ready, r...), append(dispatch, d...), append(onWorker, w...)
		for _, w := range workers {
			w.cancel()
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(steps)/elapsed.Seconds(), "steps/s")
	// The CPU the whole farm (trove, controller and both workers, all in
	// this process) spends per step: on a shared machine it moves less
	// than the rate, which waits for whatever else runs.
	b.ReportMetric(float64(cpu.Microseconds())/float64(steps), "cpu-µs/step")
	b.ReportMetric(float64(percentile(ready, 50).Microseconds()), "p50-ready-µs")
	b.ReportMetric(float64(percentile(ready, 99).Microseconds()), "p99-ready-µs")
	b.ReportMetric(float64(percentile(dispatch, 50).Microseconds()), "p50-dispatch-µs")
	b.ReportMetric(float64(percentile(dispatch, 99).Microseconds()), "p99-dispatch-µs")
	// From a job's arrival to its done report: the no-op worker storing
	// its manifest in the cache.
	b.ReportMetric(float64(percentile(onWorker, 50).Microseconds()), "p50-on-worker-µs")
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latencies works out, for every step that ran, how long it waited from
// becoming ready, and from when it could have started on its worker.
func latencies(g *definitions.Graph, workers []*testWorker, resolvedAt time.Time) (ready, dispatch, onWorker []time.Duration) {
	done := map[string]time.Time{}
	arrived := map[string]time.Time{}
	workerOf := map[string]*testWorker{}
	for _, w := range workers {
		w.mu.Lock()
		for n, at := range w.reported {
			done[n] = at
		}
		for n, at := range w.arrived {
			arrived[n], workerOf[n] = at, w
		}
		w.mu.Unlock()
	}
	for _, s := range g.Steps {
		at, ok := arrived[s.Name]
		if !ok {
			continue
		}
		readyAt := resolvedAt
		for _, d := range s.Deps {
			if done[d.Name].After(readyAt) {
				readyAt = done[d.Name]
			}
		}
		ready = append(ready, at.Sub(readyAt))
		onWorker = append(onWorker, done[s.Name].Sub(at))
		// The slot it took was freed by the worker's latest done report
		// before it arrived.
		free := readyAt
		for n, t := range workerOf[s.Name].reported {
			if t.Before(at) && t.After(free) && n != s.Name {
				free = t
			}
		}
		dispatch = append(dispatch, at.Sub(free))
	}
	return ready, dispatch, onWorker
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
