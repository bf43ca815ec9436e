// Package sim runs a scheduler policy over a build DAG in virtual time, so
// that policies can be compared on whole-system builds in milliseconds
// rather than hours. It drives the real scheduler.Scheduler, not a model of
// it: what the simulator measures is what the controller would do, given
// that every step takes exactly the time the DAG says and nothing fails.
// A farm may also charge each step what it costs on top (Costs: staging,
// a fixed cost, transfers through the trove's shared bandwidth), for
// asking how those costs scale with the system and the farm.
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
	// Output is the artifact the step uploads to the trove when it ends,
	// for the steps that stage it and for Costs to price.
	Output Artifact
	// Stages are indices of earlier steps whose Output this step stages
	// before it runs: for a chunk, every chunk it depends on transitively
	// (its staging closure); for a system, every chunk it assembles. They
	// are what a worker must download if it does not hold them yet, and
	// unpack or link. Deps, not Stages, order the steps.
	Stages []int
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
		if s.Output.Bytes < 0 || s.Output.Files < 0 || s.Output.Blobs < 0 {
			return fmt.Errorf("dag %q: step %q has a negative output size", d.Name, s.Name)
		}
		for _, dep := range s.Deps {
			if dep < 0 || dep >= i {
				return fmt.Errorf("dag %q: step %q (index %d) depends on index %d, which is not an earlier step", d.Name, s.Name, i, dep)
			}
		}
	}
	// A step can only stage what has been built before it starts: its
	// transitive dependencies.
	words := (len(d.Steps) + 63) / 64
	ancestors := make([][]uint64, len(d.Steps))
	for i, s := range d.Steps {
		if len(s.Stages) == 0 {
			continue
		}
		if ancestors[i] == nil {
			d.ancestors(ancestors, i, words)
		}
		for _, st := range s.Stages {
			if st < 0 || st >= i || ancestors[i][st/64]&(1<<(st%64)) == 0 {
				return fmt.Errorf("dag %q: step %q (index %d) stages index %d, which it does not depend on", d.Name, s.Name, i, st)
			}
		}
	}
	return nil
}

// ancestors fills sets[i] (and those of i's dependencies) with the bit set
// of every step i depends on, directly or not. Deps must already be valid.
func (d DAG) ancestors(sets [][]uint64, i, words int) {
	set := make([]uint64, words)
	for _, dep := range d.Steps[i].Deps {
		if sets[dep] == nil {
			d.ancestors(sets, dep, words)
		}
		set[dep/64] |= 1 << (dep % 64)
		for w, bits := range sets[dep] {
			set[w] |= bits
		}
	}
	sets[i] = set
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

// Span is one step's run in a timeline: from Start, Fetch downloading what
// the worker lacks of its staging closure (Fetched bytes), Setup for the
// fixed cost and staging, the step's Duration, and Upload for its output,
// so End - Start is their sum. With zero Costs only the Duration is left.
type Span struct {
	Step   int // index in DAG.Steps
	Name   string
	Worker string
	Start  time.Duration
	End    time.Duration

	Fetched int64
	Fetch   time.Duration
	Setup   time.Duration
	Upload  time.Duration
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
	// Utilisation is the fraction of all slots' time over the makespan
	// spent on the steps' own work: TotalWork / (Makespan × slots), the
	// farm's costs not counted. 0 when the makespan is 0.
	Utilisation float64
	// Downloaded and Uploaded are the bytes that crossed the trove in each
	// direction: with a bandwidth limit, the makespan is at least each
	// divided by its bandwidth.
	Downloaded, Uploaded int64
}

// Farm is the machines a simulation runs on.
type Farm struct {
	Workers        int
	SlotsPerWorker int
	// Costs are what a step costs on top of its Duration; zero for a farm
	// where only the build work takes time.
	Costs Costs
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
// With farm.Costs, a step goes through phases (see Span): the download of
// the staged artifacts its worker does not hold, sharing the trove's
// bandwidth with every other transfer under way; the fixed cost and
// staging, cold or warm on that worker; its Duration; and the upload of
// its Output, sharing the trove likewise. The farm starts cold: no worker
// holds or has unpacked anything. A worker keeps every blob it built or
// downloaded (its blob cache is not bounded here) and, with UnpackOnce,
// every artifact it staged unpacked. Both count from the moment a step on
// that worker starts, so two slots of one worker never fetch or unpack the
// same artifact twice, as a worker that shares downloads between its jobs
// would not.
//
// Run is deterministic: the scheduler is, and every tie here is broken by
// assignment order. It fails when d or the costs are invalid, or the
// scheduler stops making progress with steps left, which would be a
// scheduler bug.
func Run(policy scheduler.Policy, d DAG, farm Farm) (Result, error) {
	if err := d.Validate(); err != nil {
		return Result{}, err
	}
	if farm.Workers <= 0 || farm.SlotsPerWorker <= 0 {
		return Result{}, fmt.Errorf("farm needs at least one worker and one slot each, got %d × %d", farm.Workers, farm.SlotsPerWorker)
	}
	c := farm.Costs
	if c.PerStep < 0 || c.UnpackPerFile < 0 || c.LinkPerBlob < 0 || c.LinkPerFile < 0 || !(c.UnpackBytesPerSecond >= 0) || !(c.Trove.UpBytesPerSecond >= 0) || !(c.Trove.DownBytesPerSecond >= 0) {
		return Result{}, fmt.Errorf("costs %+v: no cost or rate may be negative", c)
	}
	s := scheduler.New(policy, scheduler.Options{})
	r := &runner{dag: d, costs: c, workers: make(map[string]*workerState, farm.Workers)}
	for i := range farm.Workers {
		s.AddWorker(WorkerName(i), farm.SlotsPerWorker, arch, nil)
		r.workers[WorkerName(i)] = &workerState{held: make([]bool, len(d.Steps)), unpacked: make([]bool, len(d.Steps))}
	}
	if rate := c.Trove.DownBytesPerSecond; rate > 0 {
		r.down = &pool{rate: rate}
	}
	if rate := c.Trove.UpBytesPerSecond; rate > 0 {
		r.up = &pool{rate: rate}
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
			// Without costs this moves steps between workers in the
			// timeline but never in time.
			Inputs: slices.Values(deps),
		}
		index[st.Name] = i
	}
	const buildID = "sim"
	events, err := s.AddBuild(buildID, specs, false)
	if err != nil {
		return Result{}, err
	}
	res := Result{Policy: policy.Name(), Timeline: make([]Span, 0, len(d.Steps))}
	r.res = &res
	ended, err := buildEnded(events, buildID)
	var now time.Duration
	for !ended && err == nil {
		assignments, _ := s.Dispatch()
		for _, a := range assignments {
			r.start(a.JobID, index[a.Task.Key], a.Worker, now)
		}
		next, ok := r.next()
		if !ok {
			return Result{}, fmt.Errorf("dag %q under %s: nothing running at %v but the build has not ended", d.Name, policy.Name(), now)
		}
		now = next
		r.advance(now)
		for !ended && err == nil {
			j := r.due(now)
			if j == nil {
				break
			}
			if r.proceed(j, now) {
				ended, err = buildEnded(s.Finished(j.id), buildID)
			}
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

// workerState is what a worker has locally, by step index: blobs in its
// cache, and (with UnpackOnce) artifacts unpacked for staging by reference.
type workerState struct {
	held, unpacked []bool
}

// phase is where a running step is.
type phase int

const (
	fetching  phase = iota // downloading through the trove's down pool
	local                  // fixed cost, staging and the build: a timer
	uploading              // its output through the trove's up pool
)

// job is a running step. seq is its assignment order, which breaks every
// tie between jobs whose phases end at the same instant.
type job struct {
	id    string
	step  int
	span  int // index in Result.Timeline
	seq   int
	phase phase
	since time.Duration // when the current phase began
	end   time.Duration // when the local phase ends
}

// runner plays out the running steps' phases for Run.
type runner struct {
	dag      DAG
	costs    Costs
	workers  map[string]*workerState
	res      *Result
	timers   runningJobs // jobs in their local phase
	down, up *pool       // nil when transfers that way are free
}

// start begins step i on worker w at now: it works out what the worker
// must download and how long staging takes there, then starts the first
// phase with anything to do.
func (r *runner) start(id string, i int, w string, now time.Duration) {
	st := r.dag.Steps[i]
	ws := r.workers[w]
	var fetch int64
	setup := r.costs.PerStep
	for _, k := range st.Stages {
		a := r.dag.Steps[k].Output
		if !ws.held[k] {
			ws.held[k] = true
			fetch += a.Bytes
		}
		setup += r.costs.StageCost(a, ws.unpacked[k])
		ws.unpacked[k] = r.costs.UnpackOnce
	}
	ws.held[i] = true // it builds the blob there
	r.res.Timeline = append(r.res.Timeline, Span{Step: i, Name: st.Name, Worker: w, Start: now, Fetched: fetch, Setup: setup})
	r.res.Downloaded += fetch
	j := &job{id: id, step: i, span: len(r.res.Timeline) - 1, seq: len(r.res.Timeline), since: now}
	if fetch > 0 && r.down != nil {
		j.phase = fetching
		r.down.add(fetch, j)
		return
	}
	r.startLocal(j, now)
}

func (r *runner) startLocal(j *job, now time.Duration) {
	j.phase, j.since = local, now
	j.end = now + r.res.Timeline[j.span].Setup + r.dag.Steps[j.step].Duration
	heap.Push(&r.timers, j)
}

// next is when the next phase of a running step ends; ok is false when
// nothing runs.
func (r *runner) next() (at time.Duration, ok bool) {
	if r.timers.Len() > 0 {
		at, ok = r.timers[0].end, true
	}
	for _, p := range []*pool{r.down, r.up} {
		if p == nil {
			continue
		}
		if t, busy := p.next(); busy && (!ok || t < at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// advance moves the transfers under way on to now, no later than next().
func (r *runner) advance(now time.Duration) {
	for _, p := range []*pool{r.down, r.up} {
		if p != nil {
			p.advance(now)
		}
	}
}

// due returns a job whose phase ends at now, or nil: local phases first in
// assignment order, then downloads, then uploads.
func (r *runner) due(now time.Duration) *job {
	if r.timers.Len() > 0 && r.timers[0].end == now {
		return heap.Pop(&r.timers).(*job)
	}
	for _, p := range []*pool{r.down, r.up} {
		if p == nil {
			continue
		}
		if j := p.done(); j != nil {
			return j
		}
	}
	return nil
}

// proceed ends j's current phase at now and starts its next; it reports
// whether the step has finished.
func (r *runner) proceed(j *job, now time.Duration) bool {
	sp := &r.res.Timeline[j.span]
	switch j.phase {
	case fetching:
		sp.Fetch = now - j.since
		r.startLocal(j, now)
		return false
	case local:
		out := r.dag.Steps[j.step].Output.Bytes
		r.res.Uploaded += out
		if out > 0 && r.up != nil {
			j.phase, j.since = uploading, now
			r.up.add(out, j)
			return false
		}
	case uploading:
		sp.Upload = now - j.since
	}
	sp.End = now
	return true
}

// runningJobs orders jobs in their local phase by end time, then by
// assignment order, which makes simultaneous ends deterministic.
type runningJobs []*job

func (r runningJobs) Len() int { return len(r) }
func (r runningJobs) Less(i, j int) bool {
	if r[i].end != r[j].end {
		return r[i].end < r[j].end
	}
	return r[i].seq < r[j].seq
}
func (r runningJobs) Swap(i, j int) { r[i], r[j] = r[j], r[i] }
func (r *runningJobs) Push(x any)   { *r = append(*r, x.(*job)) }
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
