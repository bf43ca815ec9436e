package scheduler

import (
	"iter"
	"time"
)

// State is where a task is in its life.
type State int

// Task states. A task only moves forward, except that a running task whose
// attempt fails for setup reasons goes back to Ready.
const (
	Waiting State = iota // some dependency is not done
	Ready                // every dependency is done; waiting for a worker
	Running              // assigned to a worker
	Done                 // its artifact exists
	Failed               // failed for good
)

func (s State) String() string {
	return [...]string{"waiting", "ready", "running", "done", "failed"}[s]
}

// Platform says which workers can run a task: the architecture must match and
// the worker must have every tag, with the same value.
type Platform struct {
	Arch string
	Tags map[string]string
}

func (p Platform) satisfiedBy(w *Worker) bool {
	if p.Arch != "" && p.Arch != w.Arch {
		return false
	}
	for k, v := range p.Tags {
		if w.Tags[k] != v {
			return false
		}
	}
	return true
}

// TaskSpec describes one step of a build as the controller submits it.
type TaskSpec struct {
	// Key is the step's cache key; tasks with equal keys are one task.
	Key  string
	Name string
	// Deps are the keys of the tasks this one needs, all of which must be
	// in the same AddBuild call.
	Deps     []string
	Platform Platform
	// Cached tasks are already done: their artifact is in the cache.
	Cached bool
	// Duration is the expected run time, used by duration-aware policies.
	Duration time.Duration
	// Payload is the controller's own data for the task (e.g. the job to
	// send to a worker); the scheduler never looks at it.
	Payload any
	// Inputs yields the cache keys of the artifacts the task downloads
	// (its staging area); workers already holding them are preferred. It
	// is called at each placement of the task, so it is cheap to call and
	// need not hold a list (a large graph's steps stage most of it).
	Inputs iter.Seq[string]
	// AwaitWorker names the worker that was running the task when the
	// controller restarted. The task is held, not dispatched, until that
	// worker says what became of its job (Adopt) or is given up on
	// (Unhold), so a step still running or finished meanwhile is not run
	// a second time.
	AwaitWorker string
	// Excluded names workers that must never run the task, e.g. the one
	// that built the artifact a reproducibility check builds again.
	Excluded []string
}

// Task is one unit of work, shared by every build that wants it.
type Task struct {
	Key      string
	Name     string
	Platform Platform
	Duration time.Duration
	Payload  any

	inputs     iter.Seq[string]
	state      State
	deps       []*Task
	dependents []*Task
	pending    int // dependencies not yet done
	wantedBy   map[*Build]bool

	// While running or after: the current attempt.
	jobID    string
	worker   string
	attempts int
	failures []Failure
	// avoid holds workers whose attempt failed for setup reasons, so the
	// retry goes elsewhere when another worker can take it.
	avoid map[string]bool
	// excluded holds workers that misbehaved on this task (Untrusted).
	excluded map[string]bool
	// heldFor is the worker a held task waits to hear from (AwaitWorker).
	heldFor string

	readySeq    uint64
	readyAt     time.Time     // when it last became ready, if Options.Now is set
	bottomLevel time.Duration // longest Duration-weighted path to a sink, itself included
}

func (t *Task) exclude(worker string) {
	if t.excluded == nil {
		t.excluded = map[string]bool{}
	}
	t.excluded[worker] = true
}

// State reports where the task is.
func (t *Task) State() State { return t.state }

// ReadySince is when the task last became ready (every dependency done),
// by Options.Now; zero without it.
func (t *Task) ReadySince() time.Time { return t.readyAt }

// Attempts counts the attempts started so far.
func (t *Task) Attempts() int { return t.attempts }

// Failures lists the failed attempts, oldest first.
func (t *Task) Failures() []Failure { return t.failures }

// Worker names the worker running (or that last ran) the task.
func (t *Task) Worker() string { return t.worker }

// BottomLevel is the expected time from starting this task to finishing the
// longest chain of work that depends on it: the critical-path priority.
func (t *Task) BottomLevel() time.Duration { return t.bottomLevel }

// FailureKind separates failures worth retrying from those that are not.
type FailureKind int

const (
	// BuildFailure means the step's own commands failed; the same inputs
	// would fail again, so it is not retried.
	BuildFailure FailureKind = iota + 1
	// SetupFailure means the farm failed (fetch, staging, upload, a lost
	// worker); another attempt, preferably elsewhere, may succeed.
	SetupFailure
)

// Failure is one failed attempt.
type Failure struct {
	Kind     FailureKind
	Worker   string
	Reason   string
	ExitCode int
	// Untrusted says the worker misbehaved (it claimed a result it did not
	// deliver): the task is never given to it again, even when it is the
	// only worker free, as a worker that merely failed may be.
	Untrusted bool
}
