package sim_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"distbuild/scheduler"
	"distbuild/scheduler/sim"
)

// These tests assert the issue's makespan targets. Simulated time makes
// them exact and repeatable, so they are ordinary tests rather than timed
// benchmarks, and they double as CI's smoke run of BenchmarkMakespan: the
// same DAGs and farms.

// figure is one row of the issue's table.
type figure struct {
	dag              string
	workers          int
	lowerBound       float64 // seconds
	fifo, critical   float64 // makespan / LowerBound
	critShorterByPct float64 // how much shorter critical path's makespan is than FIFO's
}

func figures(t testing.TB) []figure {
	var out []figure
	for _, d := range dags(t) {
		for _, w := range workerCounts {
			farm := sim.Farm{Workers: w, SlotsPerWorker: 1}
			lb := sim.LowerBound(d, farm.Slots())
			fifo := run(t, scheduler.FIFO{}, d, farm)
			crit := run(t, scheduler.CriticalPath{}, d, farm)
			out = append(out, figure{
				dag: d.Name, workers: w, lowerBound: lb.Seconds(),
				fifo:             sim.Ratio(fifo.Makespan, lb),
				critical:         sim.Ratio(crit.Makespan, lb),
				critShorterByPct: 100 * (1 - crit.Makespan.Seconds()/fifo.Makespan.Seconds()),
			})
		}
	}
	return out
}

func TestCriticalPathMeetsTheIssuesMakespanTargets(t *testing.T) {
	for _, f := range figures(t) {
		t.Logf("makespan/LB fifo=%.3f critical-path=%.3f (workers=%d, dag=%s; critical path %.1f%% shorter)", f.fifo, f.critical, f.workers, f.dag, f.critShorterByPct)
		if f.critical > 1.10 {
			t.Errorf("%s on %d workers: critical path's makespan is %.3f × the lower bound, want ≤ 1.10", f.dag, f.workers, f.critical)
		}
		// The 15% claim holds where the short steps keep the farm busy
		// long enough to delay the chain: at 2 and 8 workers. At 32 the
		// 400 one-minute steps are gone in 13 minutes, so FIFO delays the
		// 100-minute chain only that much (about 7%), and no policy can
		// win 15% there.
		if f.dag == "chain-plus-many" && f.workers <= 8 && f.critShorterByPct < 15 {
			t.Errorf("chain-plus-many on %d workers: critical path is %.1f%% shorter than FIFO, want ≥ 15%%", f.workers, f.critShorterByPct)
		}
	}
}

// The issue's nine cases could meet their target by luck, so this sweeps
// every farm size from 1 to 24 workers over DAGs from other seeds and
// compares with HeadTailBound, which (unlike LowerBound) is close to the
// optimum where the critical path and the work per worker are similar.
// Critical path stays within 5% of it everywhere (3% worst at the time of
// writing): what is left to gain over it is small.
func TestCriticalPathStaysNearOptimalOnEveryFarmSize(t *testing.T) {
	if testing.Short() {
		t.Skip("sweeps 216 simulations")
	}
	for seed := uint64(2); seed <= 4; seed++ {
		cfg := realSystemConfig
		cfg.Seed = seed + 10
		for _, d := range []sim.DAG{realSystem(t, cfg, seed), sim.WideShallow(seed, 500, 3)} {
			worst, worstAt := 0.0, 0
			for w := 1; w <= 24; w++ {
				res := run(t, scheduler.CriticalPath{}, d, sim.Farm{Workers: w, SlotsPerWorker: 1})
				if r := sim.Ratio(res.Makespan, sim.HeadTailBound(d, w)); r > worst {
					worst, worstAt = r, w
				}
			}
			t.Logf("%s (seed %d): worst makespan/head-tail bound %.3f at %d workers", d.Name, seed, worst, worstAt)
			if worst > 1.05 {
				t.Errorf("%s (seed %d): critical path is %.3f × the head-tail bound at %d workers, want ≤ 1.05", d.Name, seed, worst, worstAt)
			}
		}
	}
}

// BenchmarkMakespan prints one line per case of the issue's table:
// makespan / lower bound for FIFO and critical path, how much shorter
// critical path is, and the simulator's cost per simulated step (both
// policies together, scheduler included). Each iteration simulates the case
// under both policies.
//
//	go test -run '^$' -bench Makespan ./scheduler/sim
func BenchmarkMakespan(b *testing.B) {
	for _, d := range dags(b) {
		for _, w := range workerCounts {
			farm := sim.Farm{Workers: w, SlotsPerWorker: 1}
			lb := sim.LowerBound(d, farm.Slots())
			b.Run(fmt.Sprintf("dag=%s/workers=%d", d.Name, w), func(b *testing.B) {
				var fifo, crit sim.Result
				for b.Loop() {
					fifo = run(b, scheduler.FIFO{}, d, farm)
					crit = run(b, scheduler.CriticalPath{}, d, farm)
				}
				b.ReportMetric(sim.Ratio(fifo.Makespan, lb), "fifo-makespan/LB")
				b.ReportMetric(sim.Ratio(crit.Makespan, lb), "critical-path-makespan/LB")
				b.ReportMetric(100*(1-crit.Makespan.Seconds()/fifo.Makespan.Seconds()), "critical-path-%-shorter")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*len(d.Steps)), "ns/step")
				b.ReportMetric(0, "ns/op") // ns/step says it per step; per op mixes DAG sizes
			})
		}
	}
}

// The controller does not know durations: it learns an average per step
// name, and before a step's first build it guesses by kind (a minute per
// chunk). This checks that critical path still earns its keep on the real
// system with those estimates: not worse than FIFO, and within the
// issue's 1.10 of the lower bound, both for a first build (defaults only)
// and with learnt averages off by a factor of e^±0.5 (σ of a log-normal
// error; a third of steps off by more than 1.65×).
func TestCriticalPathCopesWithEstimatesTheControllerHas(t *testing.T) {
	d, kinds := realSystemAndKinds(t, realSystemConfig, 1)
	r := sim.NewRand(2)
	for _, tc := range []struct {
		name string
		dag  sim.DAG
	}{
		{"first build", d.WithEstimates(func(s sim.Step) time.Duration { return firstBuildEstimate[kinds[s.Name]] })},
		{"noisy averages", d.WithEstimates(func(s sim.Step) time.Duration {
			return max(1, time.Duration(float64(s.Duration)*math.Exp(0.5*r.NormFloat64())))
		})},
	} {
		for _, w := range workerCounts {
			farm := sim.Farm{Workers: w, SlotsPerWorker: 1}
			lb := sim.LowerBound(d, farm.Slots())
			fifo := run(t, scheduler.FIFO{}, tc.dag, farm)
			crit := run(t, scheduler.CriticalPath{}, tc.dag, farm)
			exact := run(t, scheduler.CriticalPath{}, d, farm)
			t.Logf("%s, %d workers: makespan/LB fifo=%.3f critical-path=%.3f (exact estimates %.3f)", tc.name, w, sim.Ratio(fifo.Makespan, lb), sim.Ratio(crit.Makespan, lb), sim.Ratio(exact.Makespan, lb))
			// A list schedule can lose a hair to any other on some farm;
			// losing more than 1% to FIFO would mean the estimates mislead.
			if float64(crit.Makespan) > 1.01*float64(fifo.Makespan) {
				t.Errorf("%s, %d workers: critical path took %v, over 1%% longer than FIFO's %v", tc.name, w, crit.Makespan, fifo.Makespan)
			}
			if r := sim.Ratio(crit.Makespan, lb); r > 1.10 {
				t.Errorf("%s, %d workers: critical path is %.3f × the lower bound, want ≤ 1.10", tc.name, w, r)
			}
		}
	}
}
