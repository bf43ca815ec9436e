package scheduler

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Worker is a machine that runs tasks, as the scheduler sees it.
type Worker struct {
	Name  string
	Slots int
	Arch  string
	Tags  map[string]string

	running map[string]*Task // by job id
	// reported holds jobs the worker says are done whose results the
	// controller is still checking (Reported): they take no slot.
	reported map[string]*Task
	// draining workers take no new tasks (Drain).
	draining bool
	// cached holds the cache keys whose artifacts the worker has locally:
	// what it reported at registration, built, or staged.
	cached map[string]bool
	// idleSince is when it last had nothing to run, by Options.Now.
	idleSince time.Time
}

// IdleSince is when the worker's last task ended, or it joined, by
// Options.Now: zero while it runs any (or without Options.Now). A farm
// that scales down lets go of workers idle for long.
func (w *Worker) IdleSince() time.Time { return w.idleSince }

// Running is how many tasks the worker runs.
func (w *Worker) Running() int { return len(w.running) }

// Draining reports whether the worker takes no new tasks (Drain).
func (w *Worker) Draining() bool { return w.draining }

// Free is the number of idle slots.
func (w *Worker) Free() int {
	if w.draining {
		return 0
	}
	return w.Slots - len(w.running)
}

// Build is one build's handle on the tasks it wants.
type Build struct {
	ID        string
	KeepGoing bool

	tasks     []*Task // in the order submitted, a valid build order
	remaining int     // tasks neither done nor given up on
	ready     readyQueue
	running   int    // tasks of this build running now
	seq       uint64 // submission order, to break ties between builds
	failed    []*Task
	skipped   map[*Task]bool
	ended     bool
}

// Tasks returns the build's tasks in build order.
func (b *Build) Tasks() []*Task { return b.tasks }

// Skipped reports whether the build gave up on t because something it needs
// failed (only with KeepGoing).
func (b *Build) Skipped(t *Task) bool { return b.skipped[t] }

// Ended reports whether the build has finished, failed or been cancelled.
func (b *Build) Ended() bool { return b.ended }

// Assignment tells the controller to start a task on a worker.
type Assignment struct {
	JobID   string
	Worker  string
	Task    *Task
	Attempt int
}

// EventKind says what happened to a build.
type EventKind int

// The kinds of event.
const (
	StepStarted EventKind = iota + 1
	StepFinished
	StepFailed
	BuildSucceeded
	BuildFailed
	BuildCancelled
)

// Event is something the controller must tell a build's clients.
type Event struct {
	Build *Build
	Kind  EventKind
	// Task is set for step events.
	Task *Task
	// Failure and WillRetry are set for StepFailed.
	Failure   Failure
	WillRetry bool
	// Reason says why a build failed or was cancelled.
	Reason string
	// Cancel lists running jobs the build's end left unwanted: the
	// controller must stop them on their workers.
	Cancel []Cancellation
}

// Cancellation asks for a running job to be stopped.
type Cancellation struct {
	JobID  string
	Worker string
}

// Options tune a Scheduler.
type Options struct {
	// MaxAttempts bounds how often a task is tried when attempts fail for
	// setup reasons, so a broken step cannot be requeued forever.
	MaxAttempts int
	// JobIDPrefix starts every job id. A controller uses a fresh prefix each
	// time it starts, so a worker's report about a job from before a restart
	// can never be mistaken for a current job.
	JobIDPrefix string
	// Now, when set, stamps each task with when it becomes ready
	// (Task.ReadySince), for the time from ready to started. Nil stamps
	// nothing, keeping the scheduler free of clocks.
	Now func() time.Time
}

// Scheduler holds every live build, task and worker.
type Scheduler struct {
	policy  Policy
	opts    Options
	tasks   map[string]*Task
	builds  map[string]*Build
	workers map[string]*Worker
	sorted  []*Worker // workers by name, kept sorted as they come and go
	jobs    map[string]*Task
	held    map[string]*Task // by key: tasks waiting for a worker to report
	seq     uint64
	nReady  int // tasks in the Ready state
	jobSeq  uint64
}

// New makes an empty scheduler.
func New(policy Policy, opts Options) *Scheduler {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	return &Scheduler{
		policy:  policy,
		opts:    opts,
		tasks:   map[string]*Task{},
		builds:  map[string]*Build{},
		workers: map[string]*Worker{},
		jobs:    map[string]*Task{},
		held:    map[string]*Task{},
	}
}

// Build returns a live build, or nil.
func (s *Scheduler) Build(id string) *Build { return s.builds[id] }

// Task returns the task with a key, or nil when no live build wants it.
func (s *Scheduler) Task(key string) *Task { return s.tasks[key] }

// Job returns the task a job runs, or nil when the job is not current (it
// finished, was cancelled, or its worker was given up on): results of such
// jobs must be ignored.
func (s *Scheduler) Job(jobID string) *Task { return s.jobs[jobID] }

// WantedBy returns the live builds that want t.
func (s *Scheduler) WantedBy(t *Task) []*Build {
	out := make([]*Build, 0, len(t.wantedBy))
	for b := range t.wantedBy {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Build) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// AddBuild submits a build. specs must be in a valid build order (each after
// its dependencies) and closed under dependencies. Tasks already known from
// other builds are shared.
func (s *Scheduler) AddBuild(id string, specs []TaskSpec, keepGoing bool) ([]Event, error) {
	if _, dup := s.builds[id]; dup {
		return nil, fmt.Errorf("build %s already exists", id)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("build %s has no steps", id)
	}
	seen := make(map[string]bool, len(specs))
	for _, sp := range specs {
		if seen[sp.Key] {
			return nil, fmt.Errorf("build %s: step key %s appears twice", id, sp.Key)
		}
		for _, d := range sp.Deps {
			if !seen[d] {
				return nil, fmt.Errorf("build %s: step %s depends on %s, which is not earlier in the build", id, sp.Name, d)
			}
		}
		seen[sp.Key] = true
	}

	s.seq++
	b := &Build{ID: id, KeepGoing: keepGoing, skipped: map[*Task]bool{}, seq: s.seq}
	s.builds[id] = b
	var events []Event
	for _, sp := range specs {
		t, known := s.tasks[sp.Key]
		if !known {
			t = &Task{Key: sp.Key, Name: sp.Name, Platform: sp.Platform, Duration: sp.Duration, Payload: sp.Payload, inputs: sp.Inputs, wantedBy: map[*Build]bool{}}
			if t.inputs == nil {
				t.inputs = noInputs
			}
			for _, d := range sp.Deps {
				dep := s.tasks[d]
				t.deps = append(t.deps, dep)
				dep.dependents = append(dep.dependents, t)
				if dep.state != Done {
					t.pending++
				}
			}
			for _, w := range sp.Excluded {
				t.exclude(w)
			}
			if sp.Cached {
				t.state = Done
			} else if sp.AwaitWorker != "" {
				t.heldFor = sp.AwaitWorker
				s.held[t.Key] = t
			}
			s.tasks[sp.Key] = t
		}
		t.wantedBy[b] = true
		if t.state == Running {
			b.running++
		}
		b.tasks = append(b.tasks, t)
		if t.state != Done {
			b.remaining++
		}
	}
	s.updateBottomLevels(b.tasks)
	for _, t := range b.tasks {
		switch {
		case t.state == Waiting && t.pending == 0 && t.heldFor == "":
			s.makeReady(t)
		case t.state == Ready:
			b.ready.push(t, s.policy.Priority(t))
		case t.state == Failed:
			events = append(events, s.failFor(b, t, t.failures[len(t.failures)-1])...)
		}
	}
	if b.remaining == 0 && !b.ended {
		events = append(events, s.end(b, BuildSucceeded, "")...)
	}
	return events, nil
}

// updateBottomLevels recomputes the critical-path length of tasks (given in
// build order) from their dependents, latest first.
func (s *Scheduler) updateBottomLevels(tasks []*Task) {
	for i := len(tasks) - 1; i >= 0; i-- {
		t := tasks[i]
		var longest time.Duration
		for _, d := range t.dependents {
			longest = max(longest, d.bottomLevel)
		}
		t.bottomLevel = t.Duration + longest
		if t.state == Ready {
			for b := range t.wantedBy {
				b.ready.update(t, s.policy.Priority(t))
			}
		}
	}
}

func (s *Scheduler) makeReady(t *Task) {
	t.state = Ready
	s.nReady++
	s.seq++
	t.readySeq = s.seq
	t.readyAt = s.now()
	for b := range t.wantedBy {
		b.ready.push(t, s.policy.Priority(t))
	}
}

// unready takes a task out of every ready queue, when it starts or nobody
// wants it any more.
func (s *Scheduler) unready(t *Task) {
	if t.state == Ready {
		s.nReady--
	}
	for b := range t.wantedBy {
		b.ready.remove(t)
	}
}

// AddWorker registers a worker, or updates its capacity when it reconnects.
func (s *Scheduler) AddWorker(name string, slots int, arch string, tags map[string]string) {
	if w, ok := s.workers[name]; ok {
		w.Slots, w.Arch, w.Tags, w.draining = slots, arch, tags, false
		return
	}
	w := &Worker{Name: name, Slots: slots, Arch: arch, Tags: tags, running: map[string]*Task{}, reported: map[string]*Task{}, cached: map[string]bool{}, idleSince: s.now()}
	s.workers[name] = w
	i, _ := slices.BinarySearchFunc(s.sorted, name, func(w *Worker, n string) int { return strings.Compare(w.Name, n) })
	s.sorted = slices.Insert(s.sorted, i, w)
}

// Drain gives a worker no more tasks; those it runs finish as usual. A
// worker being shut down asks for this, so its running steps are not
// wasted and nothing new lands on it.
func (s *Scheduler) Drain(name string) {
	if w, ok := s.workers[name]; ok {
		w.draining = true
	}
}

// WorkerHolds records artifacts a worker has in its local cache, e.g. as it
// reported when it registered, so steps needing them prefer that worker.
func (s *Scheduler) WorkerHolds(name string, keys []string) {
	if w, ok := s.workers[name]; ok {
		for _, k := range keys {
			w.cached[k] = true
		}
	}
}

// RemoveWorker forgets a worker that disconnected or missed its deadline.
// Its jobs count as failed setup attempts and are requeued elsewhere.
func (s *Scheduler) RemoveWorker(name, reason string) []Event {
	w, ok := s.workers[name]
	if !ok {
		return nil
	}
	delete(s.workers, name)
	s.sorted = slices.DeleteFunc(s.sorted, func(x *Worker) bool { return x == w })
	var events []Event
	for _, jobs := range []map[string]*Task{w.running, w.reported} {
		for _, jobID := range sortedJobIDs(jobs) {
			events = append(events, s.Failed(jobID, Failure{Kind: SetupFailure, Worker: name, Reason: reason})...)
		}
	}
	return events
}

// Reported frees the slot of a job its worker says is done while the
// controller checks the result: the worker is idle, so it can start the
// next task meanwhile instead of waiting out a round trip to the cache.
// The task stays the job's until Finished or Failed settles it, and its
// dependents wait for that; a worker lost meanwhile fails it as if it were
// still running.
func (s *Scheduler) Reported(jobID string) {
	t, ok := s.jobs[jobID]
	if !ok {
		return
	}
	if w, ok := s.workers[t.worker]; ok && w.running[jobID] == t {
		delete(w.running, jobID)
		w.reported[jobID] = t
		if len(w.running) == 0 {
			w.idleSince = s.now()
		}
	}
}

func sortedJobIDs(m map[string]*Task) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Counts are how many tasks of live builds are in each state, for
// metrics.
type Counts struct {
	Waiting, Ready, Running int
}

// Count counts the live builds' tasks by state, looking at each once.
func (s *Scheduler) Count() Counts {
	c := Counts{Ready: s.nReady, Running: len(s.jobs)}
	for _, t := range s.tasks {
		if t.state == Waiting {
			c.Waiting++
		}
	}
	return c
}

// Ready returns the tasks ready to run. After Dispatch, no free slot can
// take any of them: they are what more workers would run.
func (s *Scheduler) Ready() []*Task {
	var out []*Task
	for _, t := range s.tasks {
		if t.state == Ready && t.heldFor == "" && len(t.wantedBy) > 0 {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *Task) int { return cmp.Compare(a.readySeq, b.readySeq) })
	return out
}

// now is Options.Now, or zero without it.
func (s *Scheduler) now() time.Time {
	if s.opts.Now == nil {
		return time.Time{}
	}
	return s.opts.Now()
}

// Workers returns the registered workers by name.
func (s *Scheduler) Workers() []*Worker { return slices.Clone(s.sorted) }

// Dispatch starts ready tasks on free worker slots until no free worker can
// run any ready task. Which task starts next is fair between builds: it
// comes from the build with the fewest tasks running (the oldest build on a
// tie), so no build waits behind a bigger one; within a build the policy
// decides. The task goes to the free worker that already holds most of its
// inputs (fewest downloads), then to the one with most free slots.
func (s *Scheduler) Dispatch() ([]Assignment, []Event) {
	var out []Assignment
	var events []Event
	for s.nReady > 0 {
		t, w := s.next()
		if t == nil {
			break
		}
		s.unready(t)
		s.jobSeq++
		t.state = Running
		t.attempts++
		t.jobID = s.opts.JobIDPrefix + "job-" + strconv.FormatUint(s.jobSeq, 10)
		t.worker = w.Name
		w.running[t.jobID] = t
		w.idleSince = time.Time{}
		s.jobs[t.jobID] = t
		w.cached[t.Key] = true
		for k := range t.inputs {
			w.cached[k] = true
		}
		out = append(out, Assignment{JobID: t.jobID, Worker: w.Name, Task: t, Attempt: t.attempts})
		for _, b := range s.WantedBy(t) {
			b.running++
			events = append(events, Event{Build: b, Kind: StepStarted, Task: t})
		}
	}
	return out, events
}

// noInputs is the inputs of a task that downloads nothing.
func noInputs(func(string) bool) {}

// next chooses the next task to start and its worker, or nil.
func (s *Scheduler) next() (*Task, *Worker) {
	var free []*Worker
	for _, w := range s.sorted {
		if w.Free() > 0 {
			free = append(free, w)
		}
	}
	if len(free) == 0 {
		return nil, nil
	}
	builds := make([]*Build, 0, len(s.builds))
	for _, b := range s.builds {
		if b.ready.Len() > 0 {
			builds = append(builds, b)
		}
	}
	slices.SortFunc(builds, func(a, b *Build) int {
		if a.running != b.running {
			return a.running - b.running
		}
		return int(a.seq) - int(b.seq)
	})
	for _, b := range builds {
		if t, w := s.pickFrom(b, free); t != nil {
			return t, w
		}
	}
	return nil, nil
}

// pickFrom takes b's most urgent ready task some free worker can run.
func (s *Scheduler) pickFrom(b *Build, free []*Worker) (*Task, *Worker) {
	var skipped []*Task
	defer func() {
		for _, t := range skipped {
			b.ready.push(t, s.policy.Priority(t))
		}
	}()
	for b.ready.Len() > 0 {
		t := b.ready.pop()
		if w := s.bestWorker(t, free); w != nil {
			return t, w
		}
		skipped = append(skipped, t)
	}
	return nil, nil
}

// bestWorker is the free worker for t: able to run it, not one it failed
// on (unless nothing else could run it), holding most of its inputs, then
// with most free slots, then first by name.
func (s *Scheduler) bestWorker(t *Task, free []*Worker) *Worker {
	var best *Worker
	bestScore := -1
	for _, w := range free {
		if !t.Platform.satisfiedBy(w) || t.excluded[w.Name] || (t.avoid[w.Name] && otherWorkerCanRun(t, w, free)) {
			continue
		}
		score := 0
		for k := range t.inputs {
			if w.cached[k] {
				score++
			}
		}
		if score > bestScore || (score == bestScore && w.Free() > best.Free()) {
			best, bestScore = w, score
		}
	}
	return best
}

// otherWorkerCanRun reports whether a free worker other than not could take
// t now. A retry avoids the worker that failed it only while another can
// run it at once: waiting for a busy one would leave a free slot idle for
// as long as its step takes.
func otherWorkerCanRun(t *Task, not *Worker, free []*Worker) bool {
	for _, w := range free {
		if w != not && !t.avoid[w.Name] && t.Platform.satisfiedBy(w) {
			return true
		}
	}
	return false
}

// Finished records that a job's artifact is in the cache. Results for jobs
// that are no longer current are ignored.
func (s *Scheduler) Finished(jobID string) []Event {
	t := s.release(jobID)
	if t == nil {
		return nil
	}
	t.state = Done
	var events []Event
	for _, d := range t.dependents {
		d.pending--
		if d.pending == 0 && d.state == Waiting && d.heldFor == "" && len(d.wantedBy) > 0 {
			s.makeReady(d)
		}
	}
	for _, b := range s.WantedBy(t) {
		b.remaining--
		events = append(events, Event{Build: b, Kind: StepFinished, Task: t})
		if b.remaining == 0 {
			events = append(events, s.endWhenDone(b)...)
		}
	}
	return events
}

// Failed records a failed attempt. Setup failures are retried, on another
// worker when possible, until MaxAttempts attempts have been made; build
// failures are final.
func (s *Scheduler) Failed(jobID string, f Failure) []Event {
	t := s.release(jobID)
	if t == nil {
		return nil
	}
	t.failures = append(t.failures, f)
	retry := f.Kind == SetupFailure && t.attempts < s.opts.MaxAttempts
	if retry {
		if t.avoid == nil {
			t.avoid = map[string]bool{}
		}
		t.avoid[f.Worker] = true
		if f.Untrusted {
			t.exclude(f.Worker)
		}
		s.makeReady(t)
		var events []Event
		for _, b := range s.WantedBy(t) {
			events = append(events, Event{Build: b, Kind: StepFailed, Task: t, Failure: f, WillRetry: true})
		}
		return events
	}
	t.state = Failed
	var events []Event
	for _, b := range s.WantedBy(t) {
		events = append(events, s.failFor(b, t, f)...)
	}
	return events
}

// Exclude makes sure the task with key never runs on worker from now on
// (a reproducibility check must not run where its step was built).
func (s *Scheduler) Exclude(key, worker string) {
	if t := s.tasks[key]; t != nil {
		t.exclude(worker)
	}
}

// CouldRun reports whether any registered worker that is not draining
// could ever run t: it matches t's platform and is not excluded from it.
// A task for which none could waits until one joins.
func (s *Scheduler) CouldRun(t *Task) bool {
	for _, w := range s.sorted {
		if !w.draining && t.Platform.satisfiedBy(w) && !t.excluded[w.Name] {
			return true
		}
	}
	return false
}

// GiveUp fails a ready task for good without running it, for a task that
// waiting cannot help: it returns nil for a task that is not ready.
func (s *Scheduler) GiveUp(key string, f Failure) []Event {
	t := s.tasks[key]
	if t == nil || t.state != Ready {
		return nil
	}
	s.unready(t)
	t.state = Failed
	t.failures = append(t.failures, f)
	var events []Event
	for _, b := range s.WantedBy(t) {
		events = append(events, s.failFor(b, t, f)...)
	}
	return events
}

// Rebuild handles a job that found artifacts it stages missing from the
// cache (evicted after its builds were planned): each done task among keys
// is built again, the tasks that had become ready on it wait for it again,
// and the job's own task waits for all of them, adding a dependency where
// it stages one it did not list (a staging closure). The attempt counts
// toward MaxAttempts like a setup failure (f), so a cache that keeps losing
// artifacts still ends the build. It returns the events and the tasks it
// reopened; with none of keys known and not failed it is an ordinary
// Failed.
func (s *Scheduler) Rebuild(jobID string, keys []string, f Failure) ([]Event, []*Task) {
	t := s.jobs[jobID]
	if t == nil {
		return nil, nil
	}
	if t.attempts >= s.opts.MaxAttempts {
		return s.Failed(jobID, f), nil // out of attempts: rebuild nothing for it
	}
	var reopened []*Task
	waiting := false // for an input another job's report already reopened
	for _, k := range keys {
		p := s.tasks[k]
		if p == nil || p == t || p.state == Failed {
			continue
		}
		if !slices.Contains(t.deps, p) {
			t.deps = append(t.deps, p)
			p.dependents = append(p.dependents, t)
		}
		if p.state == Done {
			s.reopen(p)
			reopened = append(reopened, p)
		} else {
			waiting = true
		}
	}
	if len(reopened) == 0 && !waiting {
		return s.Failed(jobID, f), nil
	}
	s.release(jobID)
	t.failures = append(t.failures, f)
	t.state = Waiting
	t.pending = 0
	for _, d := range t.deps {
		if d.state != Done {
			t.pending++
		}
	}
	var events []Event
	for _, b := range s.WantedBy(t) {
		events = append(events, Event{Build: b, Kind: StepFailed, Task: t, Failure: f, WillRetry: true})
	}
	return events, reopened
}

// reopen makes a done task whose artifact vanished wanted again: its
// builds count it as remaining, and dependents not yet started wait for
// it. Running dependents are left alone: they have staged it already, or
// will report it missing themselves.
func (s *Scheduler) reopen(p *Task) {
	p.state = Waiting
	p.pending = 0
	for _, d := range p.deps {
		if d.state != Done {
			p.pending++
		}
	}
	for b := range p.wantedBy {
		b.remaining++
	}
	for _, d := range p.dependents {
		switch d.state {
		case Ready:
			s.unready(d)
			d.state = Waiting
			d.pending++
		case Waiting:
			d.pending++
		}
	}
	if p.pending == 0 && p.heldFor == "" && len(p.wantedBy) > 0 {
		s.makeReady(p)
	}
}

// failFor tells build b that t failed for good, and ends b unless it keeps
// going, in which case everything in b that needs t is given up on.
func (s *Scheduler) failFor(b *Build, t *Task, f Failure) []Event {
	events := []Event{{Build: b, Kind: StepFailed, Task: t, Failure: f}}
	b.failed = append(b.failed, t)
	if !b.KeepGoing {
		return append(events, s.end(b, BuildFailed, failureReason(t, f))...)
	}
	b.remaining--
	var skip func(*Task)
	skip = func(x *Task) {
		for _, d := range x.dependents {
			if d.wantedBy[b] && !b.skipped[d] && d.state != Done && d.state != Failed {
				b.skipped[d] = true
				b.remaining--
				skip(d)
			}
		}
	}
	skip(t)
	if b.remaining == 0 {
		events = append(events, s.endWhenDone(b)...)
	}
	return events
}

func failureReason(t *Task, f Failure) string {
	if f.Kind == BuildFailure {
		return fmt.Sprintf("step %s failed: %s", t.Name, f.Reason)
	}
	reasons := ""
	for i, pf := range t.failures {
		if i > 0 {
			reasons += "; "
		}
		reasons += fmt.Sprintf("attempt %d on %s: %s", i+1, pf.Worker, pf.Reason)
	}
	return fmt.Sprintf("step %s failed %d times for setup reasons (%s)", t.Name, len(t.failures), reasons)
}

// endWhenDone ends a build with nothing left to run.
func (s *Scheduler) endWhenDone(b *Build) []Event {
	if len(b.failed) == 0 {
		return s.end(b, BuildSucceeded, "")
	}
	names := make([]string, len(b.failed))
	for i, t := range b.failed {
		names[i] = t.Name
	}
	return s.end(b, BuildFailed, fmt.Sprintf("%d step(s) failed: %v", len(b.failed), names))
}

// release ends a job's attempt and frees its worker slot.
func (s *Scheduler) release(jobID string) *Task {
	t, ok := s.jobs[jobID]
	if !ok {
		return nil
	}
	delete(s.jobs, jobID)
	if w, ok := s.workers[t.worker]; ok {
		if w.running[jobID] == t {
			delete(w.running, jobID)
			if len(w.running) == 0 {
				w.idleSince = s.now()
			}
		}
		delete(w.reported, jobID)
	}
	for b := range t.wantedBy {
		b.running--
	}
	t.jobID = ""
	return t
}

// Held returns the keys of the tasks held for a worker to report, or for
// every worker when worker is empty.
func (s *Scheduler) Held(worker string) []string {
	var keys []string
	for k, t := range s.held {
		if worker == "" || t.heldFor == worker {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Adopt makes a job that a worker reports, but that this scheduler did not
// hand out (it predates a controller restart), the current attempt at the
// task with its cache key. It succeeds only for a task that is not running
// or done and whose dependencies are all done; the job's results are then
// treated like those of a dispatched job.
func (s *Scheduler) Adopt(key, worker, jobID string) ([]Event, bool) {
	t, ok := s.tasks[key]
	w, known := s.workers[worker]
	if !ok || !known || t.pending > 0 || (t.state != Waiting && t.state != Ready) || s.jobs[jobID] != nil {
		return nil, false
	}
	s.unready(t)
	delete(s.held, key)
	t.heldFor = ""
	t.state = Running
	t.attempts++
	t.jobID, t.worker = jobID, worker
	w.running[jobID] = t
	w.idleSince = time.Time{}
	s.jobs[jobID] = t
	w.cached[t.Key] = true
	var events []Event
	for _, b := range s.WantedBy(t) {
		b.running++
		events = append(events, Event{Build: b, Kind: StepStarted, Task: t})
	}
	return events, true
}

// Unhold lets a held task be dispatched again: its worker came back without
// it, or did not come back in time.
func (s *Scheduler) Unhold(key string) {
	t, ok := s.held[key]
	if !ok {
		return
	}
	delete(s.held, key)
	t.heldFor = ""
	if t.state == Waiting && t.pending == 0 && len(t.wantedBy) > 0 {
		s.makeReady(t)
	}
}

// CancelBuild ends a build. Tasks no other build wants are dropped, and the
// BuildCancelled event lists their running jobs for the workers to stop.
func (s *Scheduler) CancelBuild(id, reason string) []Event {
	b, ok := s.builds[id]
	if !ok || b.ended {
		return nil
	}
	return s.end(b, BuildCancelled, reason)
}

// end closes a build and drops the tasks only it wanted, cancelling their
// running jobs.
func (s *Scheduler) end(b *Build, kind EventKind, reason string) []Event {
	b.ended = true
	delete(s.builds, b.ID)
	var cancel []Cancellation
	for _, t := range b.tasks {
		delete(t.wantedBy, b)
		if len(t.wantedBy) > 0 {
			continue
		}
		if t.state == Running {
			cancel = append(cancel, Cancellation{JobID: t.jobID, Worker: t.worker})
			s.release(t.jobID)
		}
		if t.state == Ready {
			s.nReady--
		}
		delete(s.tasks, t.Key)
		delete(s.held, t.Key)
		for _, d := range t.deps {
			d.dependents = slices.DeleteFunc(d.dependents, func(x *Task) bool { return x == t })
		}
	}
	return []Event{{Build: b, Kind: kind, Reason: reason, Cancel: cancel}}
}

// readyQueue is a heap of ready tasks, highest priority first, then oldest.
type readyQueue struct {
	items []*queued
	index map[*Task]*queued
}

type queued struct {
	task     *Task
	priority float64
	pos      int
}

func (q *readyQueue) Len() int { return len(q.items) }
func (q *readyQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.task.readySeq < b.task.readySeq
}
func (q *readyQueue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].pos, q.items[j].pos = i, j
}
func (q *readyQueue) Push(x any) {
	it := x.(*queued)
	it.pos = len(q.items)
	q.items = append(q.items, it)
}
func (q *readyQueue) Pop() any {
	it := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return it
}

func (q *readyQueue) push(t *Task, priority float64) {
	if q.index == nil {
		q.index = map[*Task]*queued{}
	}
	if it, ok := q.index[t]; ok {
		it.priority = priority
		heap.Fix(q, it.pos)
		return
	}
	it := &queued{task: t, priority: priority}
	q.index[t] = it
	heap.Push(q, it)
}

func (q *readyQueue) pop() *Task {
	it := heap.Pop(q).(*queued)
	delete(q.index, it.task)
	return it.task
}

func (q *readyQueue) remove(t *Task) {
	if it, ok := q.index[t]; ok {
		heap.Remove(q, it.pos)
		delete(q.index, t)
	}
}

func (q *readyQueue) update(t *Task, priority float64) {
	if _, ok := q.index[t]; ok {
		q.push(t, priority)
	}
}
