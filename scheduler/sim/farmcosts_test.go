package sim_test

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"distbuild/scheduler"
	"distbuild/scheduler/sim"
)

// Issue 18's item 7: the 450-chunk desktop shape on a farm that pays for
// staging, a fixed cost per step and transfers through a shared trove,
// before the issue (sim.CostsToday) and after (sim.CostsTarget).

var costWorkerCounts = []int{2, 8, 32, 128}

var costModels = []struct {
	name  string
	costs sim.Costs
}{{"before", sim.CostsToday}, {"after", sim.CostsTarget}}

// withoutSizes is d as it was before steps had outputs and staging
// closures.
func withoutSizes(d sim.DAG) sim.DAG {
	out := sim.DAG{Name: d.Name, Steps: make([]sim.Step, len(d.Steps))}
	for i, s := range d.Steps {
		s.Output, s.Stages = sim.Artifact{}, nil
		out.Steps[i] = s
	}
	return out
}

// Sizes and closures change nothing on a farm without costs: the same
// timelines, span for span, as the DAG without them, so every figure
// measured before costs existed still holds.
func TestZeroCostsReproduceTheMakespansExactly(t *testing.T) {
	d := realSystem(t, realSystemConfig, 1)
	bare := withoutSizes(d)
	for _, w := range append(workerCounts, costWorkerCounts...) {
		for _, p := range policies {
			farm := sim.Farm{Workers: w, SlotsPerWorker: 1}
			got, want := run(t, p, d, farm), run(t, p, bare, farm)
			got.Downloaded, got.Uploaded = 0, 0 // what crossed the trove, for free
			for i := range got.Timeline {
				got.Timeline[i].Fetched = 0
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s on %d workers: makespan %v with sizes and no costs, %v without sizes; timelines differ", p.Name(), w, got.Makespan, want.Makespan)
			}
		}
	}
	if got := run(t, scheduler.CriticalPath{}, d, sim.Farm{Workers: 8, SlotsPerWorker: 1}).Makespan; got != d.CriticalPath() {
		t.Errorf("critical path on 8 workers without costs: makespan %v, want the critical path %v as before", got, d.CriticalPath())
	}
}

// Hand-worked sharing of the trove: p and q (100 MB each, 1 min) build on
// w000 and w001 and upload together at half of 100 MB/s each, done at
// 62 s. Then x, y and z, each staging both, go to w000 (holds p), w001
// (holds q) and w002 (holds nothing): 100 + 100 + 200 MB to download, a
// third of the bandwidth each, so x and y have theirs at 65 s and z,
// alone for its last 100 MB, at 66 s.
func TestTheTroveIsSharedByEveryTransferUnderWay(t *testing.T) {
	const mb = 1e6
	out := sim.Artifact{Bytes: 100 * mb, Files: 1, Blobs: 1}
	d := sim.DAG{Name: "share", Steps: []sim.Step{
		{Name: "p", Duration: time.Minute, Output: out},
		{Name: "q", Duration: time.Minute, Output: out},
		{Name: "x", Deps: []int{0, 1}, Stages: []int{0, 1}},
		{Name: "y", Deps: []int{0, 1}, Stages: []int{0, 1}},
		{Name: "z", Deps: []int{0, 1}, Stages: []int{0, 1}},
	}}
	farm := sim.Farm{Workers: 3, SlotsPerWorker: 1, Costs: sim.Costs{Trove: sim.Trove{UpBytesPerSecond: 100 * mb, DownBytesPerSecond: 100 * mb}}}
	for _, p := range policies {
		res := run(t, p, d, farm)
		checkTimeline(t, d, farm, res)
		if res.Makespan != 66*time.Second || res.Downloaded != 400*mb || res.Uploaded != 200*mb {
			t.Errorf("%s: makespan %v, %d bytes down, %d up; want 66s, 400 MB, 200 MB", p.Name(), res.Makespan, res.Downloaded, res.Uploaded)
		}
		for _, sp := range res.Timeline {
			var want time.Duration
			switch {
			case sp.Step < 2:
				want = 62 * time.Second // built by 60 s, uploaded by 62 s
			case sp.Worker == "w002":
				want = 66 * time.Second
			default:
				want = 65 * time.Second
			}
			if sp.End != want {
				t.Errorf("%s: %s on %s ended at %v, want %v", p.Name(), sp.Name, sp.Worker, sp.End, want)
			}
		}
	}
}

// A step costs its fixed cost on top of its duration: a chain of ten
// one-minute steps takes ten times a minute and the cost.
func TestTheFixedCostIsPaidOncePerStep(t *testing.T) {
	d := sim.DAG{Name: "chain"}
	for i := range 10 {
		s := sim.Step{Name: fmt.Sprintf("s%d", i), Duration: time.Minute}
		if i > 0 {
			s.Deps = []int{i - 1}
		}
		d.Steps = append(d.Steps, s)
	}
	for _, c := range costModels {
		farm := sim.Farm{Workers: 2, SlotsPerWorker: 1, Costs: c.costs}
		res := run(t, scheduler.CriticalPath{}, d, farm)
		checkTimeline(t, d, farm, res)
		if want := 10 * (time.Minute + c.costs.PerStep); res.Makespan != want {
			t.Errorf("%s: makespan %v, want %v", c.name, res.Makespan, want)
		}
	}
}

// The staging benchmark closure (300 artifacts, 1 GiB, 60,000
// files) costs, cold, what the issue measured for 600 MB in 60,000 files
// (8.5-20 s), and, warm after the issue, under its 1 s goal. Every chunk
// of the real system is cheaper warm than cold after, and the same either
// way before.
func TestWarmStagingIsCheaperThanCold(t *testing.T) {
	closure := sim.Artifact{Bytes: 1 << 30, Files: 60000, Blobs: 300}
	if cold := sim.CostsToday.StageCost(closure, false); cold < 8500*time.Millisecond || cold > 20*time.Second {
		t.Errorf("cold staging of 1 GiB in 60,000 files takes %v, outside the issue's measured 8.5-20 s", cold)
	}
	if warm := sim.CostsTarget.StageCost(closure, true); warm >= time.Second {
		t.Errorf("warm staging of 300 artifacts takes %v after the issue, want under its 1 s goal", warm)
	}
	for _, s := range realSystem(t, realSystemConfig, 1).Steps {
		a := s.Output
		if a.Bytes == 0 {
			continue
		}
		if warm, cold := sim.CostsTarget.StageCost(a, true), sim.CostsTarget.StageCost(a, false); warm >= cold {
			t.Errorf("after: staging %s warm costs %v, cold %v", s.Name, warm, cold)
		}
		if warm, cold := sim.CostsToday.StageCost(a, true), sim.CostsToday.StageCost(a, false); warm != cold {
			t.Errorf("before: staging %s warm costs %v, cold %v; unpacking every time has no warm", s.Name, warm, cold)
		}
	}
}

// On one worker with unpack once, each artifact is unpacked the first time
// a step stages it and linked every time after; the simulated setup time
// is exactly that, and less than unpacking every time.
func TestUnpackOnceUnpacksEachArtifactOncePerWorker(t *testing.T) {
	d := realSystem(t, realSystemConfig, 1)
	farm := sim.Farm{Workers: 1, SlotsPerWorker: 1, Costs: sim.CostsTarget}
	res := run(t, scheduler.CriticalPath{}, d, farm)
	checkTimeline(t, d, farm, res)
	seen := make([]bool, len(d.Steps))
	var want, got time.Duration
	for _, sp := range res.Timeline { // in the order the steps started
		want += farm.Costs.PerStep
		for _, k := range d.Steps[sp.Step].Stages {
			want += farm.Costs.StageCost(d.Steps[k].Output, seen[k])
			seen[k] = true
		}
		got += sp.Setup
	}
	if got != want {
		t.Errorf("setup time %v over the build, want %v: each artifact unpacked once, linked after", got, want)
	}
	every := farm
	every.Costs.UnpackOnce = false
	var unpacking time.Duration
	for _, sp := range run(t, scheduler.CriticalPath{}, d, every).Timeline {
		unpacking += sp.Setup
	}
	if got >= unpacking/2 {
		t.Errorf("setup time %v unpacking once, %v unpacking every time; want less than half", got, unpacking)
	}
}

// A worker downloads exactly what its steps stage and it did not build,
// once, and no farm moves bytes faster than the trove: the makespan is at
// least the bytes each way over the bandwidth each way, and each fetch at
// least its bytes over the whole bandwidth.
func TestABandwidthLimitedFarmTakesAtLeastItsBytesOverTheBandwidth(t *testing.T) {
	d := realSystem(t, realSystemConfig, 1)
	var outputs int64
	for _, s := range d.Steps {
		outputs += s.Output.Bytes
	}
	for _, scale := range []float64{1, 1.0 / 64, 1.0 / 512} {
		for _, w := range []int{2, 8, 32} {
			for _, c := range costModels {
				costs := c.costs
				costs.Trove.DownBytesPerSecond *= scale
				costs.Trove.UpBytesPerSecond *= scale
				farm := sim.Farm{Workers: w, SlotsPerWorker: 1, Costs: costs}
				res := run(t, scheduler.CriticalPath{}, d, farm)
				checkTimeline(t, d, farm, res)
				built := map[string][]bool{}
				staged := map[string][]bool{}
				for _, sp := range res.Timeline {
					if built[sp.Worker] == nil {
						built[sp.Worker], staged[sp.Worker] = make([]bool, len(d.Steps)), make([]bool, len(d.Steps))
					}
					built[sp.Worker][sp.Step] = true
					for _, k := range d.Steps[sp.Step].Stages {
						staged[sp.Worker][k] = true
					}
					if fastest := seconds(float64(sp.Fetched) / costs.Trove.DownBytesPerSecond); sp.Fetch < fastest {
						t.Errorf("%s, %d workers, bandwidth × %g: %s fetched %d bytes in %v, faster than the whole trove (%v)", c.name, w, scale, sp.Name, sp.Fetched, sp.Fetch, fastest)
					}
				}
				var down int64
				for wk := range built {
					for k, s := range staged[wk] {
						if s && !built[wk][k] {
							down += d.Steps[k].Output.Bytes
						}
					}
				}
				name := fmt.Sprintf("%s, %d workers, bandwidth × %g", c.name, w, scale)
				if res.Downloaded != down || res.Uploaded != outputs {
					t.Errorf("%s: %d bytes down and %d up, want %d (staged where not built) and %d (every output)", name, res.Downloaded, res.Uploaded, down, outputs)
				}
				if lb := seconds(max(float64(down)/costs.Trove.DownBytesPerSecond, float64(outputs)/costs.Trove.UpBytesPerSecond)); res.Makespan < lb {
					t.Errorf("%s: makespan %v beats the trove's bound %v", name, res.Makespan, lb)
				}
			}
		}
	}
}

// seconds is a duration of s seconds, rounded down to the nanosecond so
// that a bound computed from it is never above the exact one.
func seconds(s float64) time.Duration { return time.Duration(math.Floor(s * 1e9)) }

// costFigure is one row of BENCHMARKS.md's table for item 7.
type costFigure struct {
	model            string
	workers          int
	makespan         time.Duration
	unlimited        time.Duration // the same with an infinitely fast trove
	free             time.Duration // the same farm with no costs at all
	setup, transfer  time.Duration // summed over every step
	downloaded       int64
	workersUsed      int
	limitDown, limUp float64 // bandwidth below which the trove is the limit
}

// limitSlack is how much longer than with an infinitely fast trove the
// makespan may be before the trove counts as the limit.
const limitSlack = 1.05

// costFigures simulates the real system under critical path, the
// controller's policy, for every cost model and farm size of the table.
func costFigures(tb testing.TB) []costFigure {
	d := realSystem(tb, realSystemConfig, 1)
	var out []costFigure
	for _, c := range costModels {
		for _, w := range costWorkerCounts {
			farm := sim.Farm{Workers: w, SlotsPerWorker: 1, Costs: c.costs}
			res := run(tb, scheduler.CriticalPath{}, d, farm)
			f := costFigure{model: c.name, workers: w, makespan: res.Makespan, downloaded: res.Downloaded}
			used := map[string]bool{}
			for _, sp := range res.Timeline {
				f.setup += sp.Setup
				f.transfer += sp.Fetch + sp.Upload
				used[sp.Worker] = true
			}
			f.workersUsed = len(used)
			unlimited := farm
			unlimited.Costs.Trove = sim.Trove{}
			f.unlimited = run(tb, scheduler.CriticalPath{}, d, unlimited).Makespan
			f.free = run(tb, scheduler.CriticalPath{}, d, sim.Farm{Workers: w, SlotsPerWorker: 1}).Makespan
			scale := troveLimit(tb, d, farm, f.unlimited)
			f.limitDown, f.limUp = scale*c.costs.Trove.DownBytesPerSecond, scale*c.costs.Trove.UpBytesPerSecond
			out = append(out, f)
		}
	}
	return out
}

// troveLimit finds, by bisection over a factor applied to both of the
// trove's bandwidths, the smallest factor at which the makespan stays
// within limitSlack of unlimited's (an infinitely fast trove's); below
// it, the trove is the limit. The makespan is not strictly monotonic in
// the bandwidth (list schedules have anomalies), so this is a point where
// it crosses, to within 1%.
func troveLimit(tb testing.TB, d sim.DAG, farm sim.Farm, unlimited time.Duration) float64 {
	fits := func(scale float64) bool {
		f := farm
		f.Costs.Trove.DownBytesPerSecond *= scale
		f.Costs.Trove.UpBytesPerSecond *= scale
		return float64(run(tb, scheduler.CriticalPath{}, d, f).Makespan) <= limitSlack*float64(unlimited)
	}
	lo, hi := 1.0/65536, 1.0 // factors: lo is the limit, hi fits
	for !fits(hi) {
		hi *= 2
	}
	for hi/lo > 1.01 {
		if mid := math.Sqrt(lo * hi); fits(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// The figures for BENCHMARKS.md, and what must hold of them: the issue's
// costs make a build slower than a free farm, meeting its targets makes
// it faster than today, and today's trove is not what limits this build.
//
//	go test -v -run FarmCosts ./scheduler/sim
func TestFarmCostsFigures(t *testing.T) {
	d := realSystem(t, realSystemConfig, 1)
	var widest sim.Artifact // the chunk staging the most bytes
	widestChunks := 0
	for _, s := range d.Steps[:len(d.Steps)-1] { // the system is last
		var c sim.Artifact
		for _, k := range s.Stages {
			c.Bytes, c.Files, c.Blobs = c.Bytes+d.Steps[k].Output.Bytes, c.Files+d.Steps[k].Output.Files, c.Blobs+d.Steps[k].Output.Blobs
		}
		if c.Bytes > widest.Bytes {
			widest, widestChunks = c, len(s.Stages)
		}
	}
	system := d.Steps[len(d.Steps)-1]
	t.Logf("the system: %d chunks, %.2f GB in %d files; the biggest chunk closure: %d chunks, %d blobs, %.2f GB in %d files",
		len(system.Stages), float64(system.Output.Bytes)/1e9, system.Output.Files, widestChunks, widest.Blobs, float64(widest.Bytes)/1e9, widest.Files)
	figs := costFigures(t)
	for _, f := range figs {
		t.Logf("%s, %d workers (%d used): makespan %v (unlimited trove %v, free farm %v); setup %v, transfers %v in all; %.1f GB down; the trove limits below %.0f MB/s down, %.0f MB/s up",
			f.model, f.workers, f.workersUsed, f.makespan.Round(time.Second), f.unlimited.Round(time.Second), f.free, f.setup.Round(time.Second), f.transfer.Round(time.Second), float64(f.downloaded)/1e9, f.limitDown/1e6, f.limUp/1e6)
		if f.makespan < f.unlimited || f.unlimited <= f.free {
			t.Errorf("%s, %d workers: makespan %v, %v with an unlimited trove, %v free; want each at least the next, the costs above nothing", f.model, f.workers, f.makespan, f.unlimited, f.free)
		}
		if f.limitDown >= sim.CostsToday.Trove.DownBytesPerSecond {
			t.Errorf("%s, %d workers: the trove limits the build below %.0f MB/s, above today's %.0f", f.model, f.workers, f.limitDown/1e6, sim.CostsToday.Trove.DownBytesPerSecond/1e6)
		}
	}
	for i := range costWorkerCounts {
		before, after := figs[i], figs[len(costWorkerCounts)+i]
		if after.makespan >= before.makespan || after.setup >= before.setup {
			t.Errorf("%d workers: after the issue makespan %v and setup %v, before %v and %v; want both shorter", before.workers, after.makespan, after.setup, before.makespan, before.setup)
		}
	}
}

// BenchmarkMakespanFarmCosts reports item 7's figures (makespan in hours,
// before and after the issue, with the trove as today or as targeted) and
// the simulator's cost per simulated step with costs. `make bench` runs it
// with BenchmarkMakespan.
//
//	go test -run '^$' -bench MakespanFarmCosts ./scheduler/sim
func BenchmarkMakespanFarmCosts(b *testing.B) {
	d := realSystem(b, realSystemConfig, 1)
	for _, c := range costModels {
		for _, w := range costWorkerCounts {
			farm := sim.Farm{Workers: w, SlotsPerWorker: 1, Costs: c.costs}
			b.Run(fmt.Sprintf("costs=%s/workers=%d", c.name, w), func(b *testing.B) {
				var res sim.Result
				for b.Loop() {
					res = run(b, scheduler.CriticalPath{}, d, farm)
				}
				b.ReportMetric(res.Makespan.Hours(), "makespan-h")
				b.ReportMetric(float64(res.Downloaded)/1e9, "GB-down")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d.Steps)), "ns/step")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
