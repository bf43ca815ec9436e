package sim_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"distbuild/scheduler"
	"distbuild/scheduler/sim"
)

// randomDAG is an arbitrary small DAG for property tests: each step depends
// on up to three random earlier ones, and durations run from 0 (a stratum
// that only records its chunks) to 10 min, often equal so that ties happen.
func randomDAG(seed uint64, n int) sim.DAG {
	r := sim.NewRand(seed)
	d := sim.DAG{Name: fmt.Sprintf("random-%d", seed)}
	for i := range n {
		s := sim.Step{Name: fmt.Sprintf("s%03d", i), Duration: time.Duration(r.IntN(11)) * time.Minute}
		if i > 0 {
			for range r.IntN(4) {
				if dep := r.IntN(i); !slices.Contains(s.Deps, dep) {
					s.Deps = append(s.Deps, dep)
				}
			}
		}
		d.Steps = append(d.Steps, s)
	}
	return d
}

// checkTimeline fails t unless res is a schedule d could really have had on
// farm: every step exactly once, for exactly its duration, after all of its
// dependencies ended, on a real worker, never more steps at once on a worker
// than it has slots, and the makespan the last end.
func checkTimeline(t *testing.T, d sim.DAG, farm sim.Farm, res sim.Result) {
	t.Helper()
	if len(res.Timeline) != len(d.Steps) {
		t.Fatalf("%d spans for %d steps", len(res.Timeline), len(d.Steps))
	}
	spans := make([]*sim.Span, len(d.Steps))
	var last time.Duration
	for i := range res.Timeline {
		sp := &res.Timeline[i]
		if spans[sp.Step] != nil {
			t.Fatalf("step %s ran twice", sp.Name)
		}
		spans[sp.Step] = sp
		if sp.Name != d.Steps[sp.Step].Name {
			t.Errorf("span for step %d is named %s, want %s", sp.Step, sp.Name, d.Steps[sp.Step].Name)
		}
		want := sp.Fetch + sp.Setup + d.Steps[sp.Step].Duration + sp.Upload
		if got := sp.End - sp.Start; got != want || sp.Start < 0 {
			t.Errorf("step %s ran %v from %v, want its fetch, setup, duration and upload %v", sp.Name, got, sp.Start, want)
		}
		if farm.Costs == (sim.Costs{}) && (sp.Fetch != 0 || sp.Setup != 0 || sp.Upload != 0) {
			t.Errorf("step %s cost %v, %v, %v on a farm with no costs", sp.Name, sp.Fetch, sp.Setup, sp.Upload)
		}
		last = max(last, sp.End)
	}
	for i, s := range d.Steps {
		for _, dep := range s.Deps {
			if spans[i].Start < spans[dep].End {
				t.Errorf("step %s started at %v, before its dependency %s ended at %v", s.Name, spans[i].Start, d.Steps[dep].Name, spans[dep].End)
			}
		}
	}
	if res.Makespan != last {
		t.Errorf("makespan %v, but the last step ended at %v", res.Makespan, last)
	}
	// Sweep each worker's starts and ends in time order, ends first at
	// equal times (a slot freed at t can be reused at t).
	type edge struct {
		at    time.Duration
		delta int
	}
	byWorker := map[string][]edge{}
	for _, sp := range res.Timeline {
		byWorker[sp.Worker] = append(byWorker[sp.Worker], edge{sp.Start, +1}, edge{sp.End, -1})
	}
	for w, edges := range byWorker {
		if !strings.HasPrefix(w, "w") || w >= sim.WorkerName(farm.Workers) {
			t.Errorf("a step ran on %q, which is not one of the %d workers", w, farm.Workers)
		}
		slices.SortFunc(edges, func(a, b edge) int {
			if a.at != b.at {
				return int(a.at - b.at)
			}
			return a.delta - b.delta
		})
		busy := 0
		for _, e := range edges {
			busy += e.delta
			if busy > farm.SlotsPerWorker {
				t.Fatalf("worker %s ran %d steps at once at %v; it has %d slots", w, busy, e.at, farm.SlotsPerWorker)
			}
		}
	}
}

func TestTimelinesRespectDependenciesSlotsAndDurations(t *testing.T) {
	all := dags(t)
	for seed := range uint64(5) {
		all = append(all, randomDAG(seed, 60))
	}
	farms := []sim.Farm{{Workers: 1, SlotsPerWorker: 1}, {Workers: 2, SlotsPerWorker: 1}, {Workers: 3, SlotsPerWorker: 2}, {Workers: 4, SlotsPerWorker: 4}, {Workers: 32, SlotsPerWorker: 1}}
	for _, d := range all {
		for _, farm := range farms {
			for _, p := range policies {
				t.Run(fmt.Sprintf("%s/%dx%d/%s", d.Name, farm.Workers, farm.SlotsPerWorker, p.Name()), func(t *testing.T) {
					res := run(t, p, d, farm)
					checkTimeline(t, d, farm, res)
					if res.Policy != p.Name() {
						t.Errorf("result names policy %q, want %q", res.Policy, p.Name())
					}
					if res.Utilisation <= 0 || res.Utilisation > 1 {
						t.Errorf("utilisation %v, want in (0, 1]", res.Utilisation)
					}
				})
			}
		}
	}
}

func TestSameInputsGiveTheSameResult(t *testing.T) {
	for _, p := range policies {
		a := run(t, p, realSystem(t, realSystemConfig, 1), sim.Farm{Workers: 8, SlotsPerWorker: 2})
		b := run(t, p, realSystem(t, realSystemConfig, 1), sim.Farm{Workers: 8, SlotsPerWorker: 2})
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two runs over the same inputs differ (makespans %v and %v)", p.Name(), a.Makespan, b.Makespan)
		}
	}
	if !reflect.DeepEqual(sim.WideShallow(3, 200, 3), sim.WideShallow(3, 200, 3)) {
		t.Error("WideShallow with the same seed made two different DAGs")
	}
	if reflect.DeepEqual(sim.WideShallow(3, 200, 3), sim.WideShallow(4, 200, 3)) {
		t.Error("WideShallow with different seeds made the same DAG; the seed is ignored")
	}
	if reflect.DeepEqual(realSystem(t, realSystemConfig, 1), realSystem(t, realSystemConfig, 2)) {
		t.Error("real-system durations with different seeds are the same; the seed is ignored")
	}
}

// The hand-worked case: on two one-slot workers, three 1-min leaves a, b, c
// and a chain x (2 min) → y (2 min), submitted in that order.
//
// FIFO starts work in ready order: a, b at 0; c, x at 1; y only when x ends
// at 3; done at 5. Critical path starts x first (bottom level 4 min against
// 1), fills the other worker with a then b, starts y and c at 2 and is done
// at 4, which is the lower bound (the chain): optimal. With both workers
// free, y goes to the one that built x (the scheduler's locality), and
// anything else to the first by name.
func TestHandMadeDAGGivesTheMakespanWorkedOutByHand(t *testing.T) {
	m := time.Minute
	d := sim.DAG{Name: "hand", Steps: []sim.Step{
		{Name: "a", Duration: m}, {Name: "b", Duration: m}, {Name: "c", Duration: m},
		{Name: "x", Duration: 2 * m}, {Name: "y", Duration: 2 * m, Deps: []int{3}},
	}}
	farm := sim.Farm{Workers: 2, SlotsPerWorker: 1}
	for _, tc := range []struct {
		policy   scheduler.Policy
		makespan time.Duration
		timeline []sim.Span
	}{
		{scheduler.FIFO{}, 5 * m, []sim.Span{
			{Step: 0, Name: "a", Worker: "w000", Start: 0, End: m},
			{Step: 1, Name: "b", Worker: "w001", Start: 0, End: m},
			{Step: 2, Name: "c", Worker: "w000", Start: m, End: 2 * m},
			{Step: 3, Name: "x", Worker: "w001", Start: m, End: 3 * m},
			{Step: 4, Name: "y", Worker: "w001", Start: 3 * m, End: 5 * m}, // where its input x is
		}},
		{scheduler.CriticalPath{}, 4 * m, []sim.Span{
			{Step: 3, Name: "x", Worker: "w000", Start: 0, End: 2 * m},
			{Step: 0, Name: "a", Worker: "w001", Start: 0, End: m},
			{Step: 1, Name: "b", Worker: "w001", Start: m, End: 2 * m},
			{Step: 4, Name: "y", Worker: "w000", Start: 2 * m, End: 4 * m},
			{Step: 2, Name: "c", Worker: "w001", Start: 2 * m, End: 3 * m},
		}},
	} {
		res := run(t, tc.policy, d, farm)
		if res.Makespan != tc.makespan {
			t.Errorf("%s: makespan %v, want %v", tc.policy.Name(), res.Makespan, tc.makespan)
		}
		if !slices.Equal(res.Timeline, tc.timeline) {
			t.Errorf("%s: timeline\n%v\nwant\n%v", tc.policy.Name(), res.Timeline, tc.timeline)
		}
	}
	if lb := sim.LowerBound(d, farm.Slots()); lb != 4*m {
		t.Errorf("LowerBound = %v, want 4m (the chain x, y; the work is 7m / 2 slots)", lb)
	}
	if got := sim.Ratio(5*m, 4*m); got != 1.25 {
		t.Errorf("Ratio(5m, 4m) = %v, want 1.25", got)
	}
}

func TestStepsTakingNoTimeAllRunAtTimeZero(t *testing.T) {
	d := sim.DAG{Name: "instant", Steps: []sim.Step{{Name: "a"}, {Name: "b", Deps: []int{0}}, {Name: "c", Deps: []int{1}}, {Name: "d"}}}
	for _, p := range policies {
		res := run(t, p, d, sim.Farm{Workers: 1, SlotsPerWorker: 1})
		checkTimeline(t, d, sim.Farm{Workers: 1, SlotsPerWorker: 1}, res)
		if res.Makespan != 0 || res.Utilisation != 0 {
			t.Errorf("%s: makespan %v, utilisation %v; want 0 and 0", p.Name(), res.Makespan, res.Utilisation)
		}
	}
	if got := sim.Ratio(0, sim.LowerBound(d, 1)); got != 1 {
		t.Errorf("Ratio for an instant DAG = %v, want 1", got)
	}
}

// bruteHeadTailBound tries every pair of thresholds against every step, the
// definition HeadTailBound computes faster.
func bruteHeadTailBound(d sim.DAG, slots int) time.Duration {
	n := len(d.Steps)
	head, tail := make([]time.Duration, n), make([]time.Duration, n)
	for i, s := range d.Steps {
		for _, dep := range s.Deps {
			head[i] = max(head[i], head[dep]+d.Steps[dep].Duration)
		}
	}
	for i := n - 1; i >= 0; i-- {
		for _, dep := range d.Steps[i].Deps {
			tail[dep] = max(tail[dep], tail[i]+d.Steps[i].Duration)
		}
	}
	best := sim.LowerBound(d, slots)
	m := time.Duration(slots)
	for _, a := range head {
		for _, b := range tail {
			var work time.Duration
			steps := 0
			for i, s := range d.Steps {
				if head[i] >= a && tail[i] >= b {
					work += s.Duration
					steps++
				}
			}
			if steps > 0 {
				best = max(best, a+(work+m-1)/m+b)
			}
		}
	}
	return best
}

func TestNoScheduleBeatsTheLowerBounds(t *testing.T) {
	for seed := range uint64(20) {
		d := randomDAG(seed, 40)
		for _, slots := range []int{1, 2, 3, 5, 8} {
			lb, ht := sim.LowerBound(d, slots), sim.HeadTailBound(d, slots)
			if want := bruteHeadTailBound(d, slots); ht != want {
				t.Fatalf("%s on %d slots: HeadTailBound = %v, brute force over every threshold says %v", d.Name, slots, ht, want)
			}
			if want := max(d.CriticalPath(), (d.TotalWork()+time.Duration(slots)-1)/time.Duration(slots)); lb != want {
				t.Fatalf("%s on %d slots: LowerBound = %v, want max(critical path, work/slots) = %v", d.Name, slots, lb, want)
			}
			for _, p := range policies {
				if res := run(t, p, d, sim.Farm{Workers: slots, SlotsPerWorker: 1}); res.Makespan < ht {
					t.Errorf("%s on %d slots under %s: makespan %v beats the head-tail bound %v, so the bound is wrong", d.Name, slots, p.Name(), res.Makespan, ht)
				}
			}
		}
	}
}

func TestInvalidInputsAreRefused(t *testing.T) {
	ok := sim.DAG{Name: "ok", Steps: []sim.Step{{Name: "a", Duration: time.Second}}}
	for _, tc := range []struct {
		name string
		dag  sim.DAG
		farm sim.Farm
		want string
	}{
		{"empty", sim.DAG{Name: "empty"}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "no steps"},
		{"forward dependency", sim.DAG{Name: "fwd", Steps: []sim.Step{{Name: "a", Deps: []int{1}}, {Name: "b"}}}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "not an earlier step"},
		{"self dependency", sim.DAG{Name: "self", Steps: []sim.Step{{Name: "a", Deps: []int{0}}}}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "not an earlier step"},
		{"duplicate name", sim.DAG{Name: "dup", Steps: []sim.Step{{Name: "a"}, {Name: "a"}}}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "appears twice"},
		{"negative duration", sim.DAG{Name: "neg", Steps: []sim.Step{{Name: "a", Duration: -1}}}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "negative"},
		{"negative output", sim.DAG{Name: "neg", Steps: []sim.Step{{Name: "a", Output: sim.Artifact{Files: -1}}}}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "negative output"},
		{"stages a step it does not depend on", sim.DAG{Name: "stray", Steps: []sim.Step{{Name: "a"}, {Name: "b"}, {Name: "c", Deps: []int{1}, Stages: []int{0}}}}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "does not depend on"},
		{"stages a later step", sim.DAG{Name: "later", Steps: []sim.Step{{Name: "a", Stages: []int{1}}, {Name: "b"}}}, sim.Farm{Workers: 1, SlotsPerWorker: 1}, "does not depend on"},
		{"negative cost", ok, sim.Farm{Workers: 1, SlotsPerWorker: 1, Costs: sim.Costs{PerStep: -time.Second}}, "negative"},
		{"negative bandwidth", ok, sim.Farm{Workers: 1, SlotsPerWorker: 1, Costs: sim.Costs{Trove: sim.Trove{DownBytesPerSecond: -1}}}, "negative"},
		{"no workers", ok, sim.Farm{Workers: 0, SlotsPerWorker: 1}, "at least one worker"},
		{"no slots", ok, sim.Farm{Workers: 1, SlotsPerWorker: 0}, "at least one worker"},
	} {
		_, err := sim.Run(scheduler.FIFO{}, tc.dag, tc.farm)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Run error = %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}
