// Package sim runs a scheduler policy over a build DAG in virtual time, so
// that policies can be compared on whole-system builds in milliseconds
// rather than hours. It drives the real scheduler.Scheduler, not a model of
// it: what the simulator measures is what the controller would do, given
// that every step takes exactly the time the DAG says and nothing fails.
//
// Like the scheduler, it knows nothing of the definitions format; callers
// turn whatever graph they have into a DAG.
package sim

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"time"

	"distbuild/scheduler"
)

// Step is one node of a DAG.
type Step struct {
	// Name must be unique within the DAG; it becomes the task's cache key
	// and name.
	Name string
	// Deps are indices of earlier steps in DAG.Steps. Requiring them to be
	// earlier makes the slice order a valid build order, which is what
	// scheduler.AddBuild wants, and rules out cycles by construction.
	Deps []int
	// Duration is how long the step runs.
	Duration time.Duration
	// Estimate is how long the scheduler is told the step will take (the
	// TaskSpec's Duration, which duration-aware policies rank by). Zero
	// means exactly Duration. A real controller only has learnt averages,
	// or a default per kind of step before a step's first build, so
	// setting Estimate shows what a policy loses to wrong guesses.
	Estimate time.Duration
}

// DAG is a build graph to simulate.
type DAG struct {
	Name  string
	Steps []Step
}

// Validate reports the first way d cannot be submitted as a build.
func (d DAG) Validate() error {
	if len(d.Steps) == 0 {
		return fmt.Errorf("dag %q has no steps", d.Name)
	}
	names := make(map[string]bool, len(d.Steps))
	for i, s := range d.Steps {
		if names[s.Name] {
			return fmt.Errorf("dag %q: step name %q appears twice", d.Name, s.Name)
		}
		names[s.Name] = true
		if s.Duration < 0 || s.Estimate < 0 {
			return fmt.Errorf("dag %q: step %q has a negative duration or estimate", d.Name, s.Name)
		}
		for _, dep := range s.Deps {
			if dep < 0 || dep >= i {
				return fmt.Errorf("dag %q: step %q (index %d) depends on index %d, which is not an earlier step", d.Name, s.Name, i, dep)
			}
		}
	}
	return nil
}

// WithEstimates returns a copy of d in which each step's Estimate is
// estimate(step), for asking how a policy fares on what the controller
// would really know: learnt averages, or defaults before a first build.
func (d DAG) WithEstimates(estimate func(Step) time.Duration) DAG {
	out := DAG{Name: d.Name, Steps: slices.Clone(d.Steps)}
	for i := range out.Steps {
		out.Steps[i].Estimate = estimate(out.Steps[i])
	}
	return out
}

// CriticalPath is the length of the longest Duration-weighted chain of
// steps: no number of workers can finish the DAG sooner. It is computed
// here rather than read from the scheduler so that tests compare the
// scheduler against an independent figure.
func (d DAG) CriticalPath() time.Duration {
	finish := make([]time.Duration, len(d.Steps)) // earliest finish with unlimited workers
	var longest time.Duration
	for i, s := range d.Steps {
		var start time.Duration
		for _, dep := range s.Deps {
			start = max(start, finish[dep])
		}
		finish[i] = start + s.Duration
		longest = max(longest, finish[i])
	}
	return longest
}

// TotalWork is the sum of every step's duration.
func (d DAG) TotalWork() time.Duration {
	var sum time.Duration
	for _, s := range d.Steps {
		sum += s.Duration
	}
	return sum
}

// LowerBound is a makespan no schedule on slots parallel slots can beat: the
// critical path, or the total work spread perfectly evenly, whichever is
// longer. It is not always reachable (when the two are close, both bind at
// once), so a ratio to it slightly above 1 can still be optimal.
func LowerBound(d DAG, slots int) time.Duration {
	if slots <= 0 {
		return 0
	}
	even := (d.TotalWork() + time.Duration(slots) - 1) / time.Duration(slots) // rounded up
	return max(d.CriticalPath(), even)
}

// HeadTailBound is a tighter lower bound than LowerBound, for telling a
// policy's shortfall from the simple bound's slack. Any step cannot start
// before its head (the longest chain of work before it) and must leave its
// tail (the longest chain after it) before the end. So for any a and b, the
// steps whose head is at least a and whose tail is at least b all run inside
// [a, makespan-b], and on slots slots that takes at least their work / slots:
// makespan >= a + work/slots + b. The bound is the best such a and b, and
// never less than LowerBound.
//
// It matters when the critical path and the total work are close: then
// work that must precede the critical path keeps slots idle at the start, or
// work after it at the end, and no schedule reaches LowerBound.
func HeadTailBound(d DAG, slots int) time.Duration {
	if slots <= 0 || len(d.Steps) == 0 {
		return 0
	}
	n := len(d.Steps)
	head := make([]time.Duration, n)
	tail := make([]time.Duration, n)
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
	// For each threshold a (a head value), take the steps with head >= a
	// in decreasing tail order: those with tail >= b are a prefix, so one
	// pass tries every b.
	byTail := make([]int, n)
	for i := range byTail {
		byTail[i] = i
	}
	slices.SortFunc(byTail, func(x, y int) int { return cmp.Compare(tail[y], tail[x]) })
	heads := slices.Clone(head)
	slices.Sort(heads)
	heads = slices.Compact(heads)
	best := LowerBound(d, slots)
	m := time.Duration(slots)
	for _, a := range heads {
		var work time.Duration
		steps := 0
		for k, i := range byTail {
			if head[i] >= a {
				work += d.Steps[i].Duration
				steps++
			}
			// The prefix holds every step with tail >= b = tail[i] only
			// where the tail changes. An empty set bounds nothing: a
			// step's own head + duration + tail is at most the makespan,
			// but a and b taken from different steps need not be.
			if steps > 0 && (k+1 == n || tail[byTail[k+1]] != tail[i]) {
				best = max(best, a+(work+m-1)/m+tail[i])
			}
		}
	}
	return best
}

// Span is one step's run in a timeline.
type Span struct {
	Step   int // index in DAG.Steps
	Name   string
	Worker string
	Start  time.Duration
	End    time.Duration
}

// Result is what one simulation produced.
type Result struct {
	Policy string
	// Makespan is when the last step finished, the build having been
	// submitted at time zero.
	Makespan time.Duration
	// Timeline holds one span per step, in the order steps were started
	// (ties in the order the scheduler assigned them).
	Timeline []Span
	// Utilisation is the busy fraction of all slots over the makespan:
	// TotalWork / (Makespan × slots). 0 when the makespan is 0.
	Utilisation float64
}

// Farm is the machines a simulation runs on.
type Farm struct {
	Workers        int
	SlotsPerWorker int
}

// Slots is the farm's total parallelism.
func (f Farm) Slots() int { return f.Workers * f.SlotsPerWorker }

// WorkerName names worker i. The scheduler breaks ties between equally good
// workers by name, so names are zero-padded to keep that order numeric.
func WorkerName(i int) string { return fmt.Sprintf("w%03d", i) }

const arch = "x86_64"

// Run submits d as one build to a fresh scheduler using policy, on a farm of
// identical x86_64 workers, and plays it out in virtual time: dispatch, jump
// to the earliest moment a running step ends, report every step ending then
// as finished (in the order they were assigned), and dispatch again, until
// the build ends. All steps ending at the same instant are reported before
// the next Dispatch, so that the scheduler chooses with everything that is
// ready at that instant rather than with an arbitrary half of it.
//
// Run is deterministic: the scheduler is, and every tie here is broken by
// assignment order. It fails when d is invalid or the scheduler stops
// making progress with steps left, which would be a scheduler bug.
func Run(policy scheduler.Policy, d DAG, farm Farm) (Result, error) {
	if err := d.Validate(); err != nil {
		return Result{}, err
	}
	if farm.Workers <= 0 || farm.SlotsPerWorker <= 0 {
		return Result{}, fmt.Errorf("farm needs at least one worker and one slot each, got %d × %d", farm.Workers, farm.SlotsPerWorker)
	}
	s := scheduler.New(policy, scheduler.Options{})
	for i := range farm.Workers {
		s.AddWorker(WorkerName(i), farm.SlotsPerWorker, arch, nil)
	}
	index := make(map[string]int, len(d.Steps)) // by key
	specs := make([]scheduler.TaskSpec, len(d.Steps))
	for i, st := range d.Steps {
		deps := make([]string, len(st.Deps))
		for j, dep := range st.Deps {
			deps[j] = d.Steps[dep].Name
		}
		specs[i] = scheduler.TaskSpec{
			Key:      st.Name,
			Name:     st.Name,
			Deps:     deps,
			Platform: scheduler.Platform{Arch: arch},
			Duration: cmp.Or(st.Estimate, st.Duration),
			// As the controller does: a step downloads its direct
			// dependencies, so the scheduler places it where they are.
			// Workers here are identical and transfers free, so this moves
			// steps between workers in the timeline but never in time.
			Inputs: deps,
		}
		index[st.Name] = i
	}
	const buildID = "sim"
	events, err := s.AddBuild(buildID, specs, false)
	if err != nil {
		return Result{}, err
	}
	res := Result{Policy: policy.Name(), Timeline: make([]Span, 0, len(d.Steps))}
	ended, err := buildEnded(events, buildID)
	var now time.Duration
	var running runningJobs
	for !ended && err == nil {
		assignments, _ := s.Dispatch()
		for _, a := range assignments {
			i := index[a.Task.Key]
			res.Timeline = append(res.Timeline, Span{Step: i, Name: a.Task.Name, Worker: a.Worker, Start: now, End: now + d.Steps[i].Duration})
			heap.Push(&running, job{id: a.JobID, end: now + d.Steps[i].Duration, seq: len(res.Timeline)})
		}
		if running.Len() == 0 {
			return Result{}, fmt.Errorf("dag %q under %s: nothing running at %v but the build has not ended", d.Name, policy.Name(), now)
		}
		now = running[0].end
		for running.Len() > 0 && running[0].end == now && !ended && err == nil {
			j := heap.Pop(&running).(job)
			ended, err = buildEnded(s.Finished(j.id), buildID)
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("dag %q under %s: %w", d.Name, policy.Name(), err)
	}
	if len(res.Timeline) != len(d.Steps) {
		return Result{}, fmt.Errorf("dag %q under %s: the build ended after %d of %d steps", d.Name, policy.Name(), len(res.Timeline), len(d.Steps))
	}
	res.Makespan = now
	if now > 0 {
		res.Utilisation = float64(d.TotalWork()) / (float64(now) * float64(farm.Slots()))
	}
	return res, nil
}

// buildEnded looks through events for the end of build id; anything but
// success is an error, since nothing fails in a simulation.
func buildEnded(events []scheduler.Event, id string) (bool, error) {
	for _, e := range events {
		if e.Build == nil || e.Build.ID != id {
			continue
		}
		switch e.Kind {
		case scheduler.BuildSucceeded:
			return true, nil
		case scheduler.BuildFailed, scheduler.BuildCancelled:
			return true, errors.New("build ended without succeeding: " + e.Reason)
		}
	}
	return false, nil
}

// job is a running step; runningJobs orders them by end time, then by
// assignment order, which makes simultaneous ends deterministic.
type job struct {
	id  string
	end time.Duration
	seq int
}

type runningJobs []job

func (r runningJobs) Len() int { return len(r) }
func (r runningJobs) Less(i, j int) bool {
	if r[i].end != r[j].end {
		return r[i].end < r[j].end
	}
	return r[i].seq < r[j].seq
}
func (r runningJobs) Swap(i, j int) { r[i], r[j] = r[j], r[i] }
func (r *runningJobs) Push(x any)   { *r = append(*r, x.(job)) }
func (r *runningJobs) Pop() any {
	old := *r
	x := old[len(old)-1]
	*r = old[:len(old)-1]
	return x
}

// Ratio is makespan / lower bound, the figure the benchmarks report: 1 is a
// provably optimal schedule. A zero lower bound means every step takes no
// time, which any schedule does optimally, so the ratio is then 1.
func Ratio(makespan, lowerBound time.Duration) float64 {
	if lowerBound == 0 {
		return 1
	}
	return float64(makespan) / float64(lowerBound)
}
