package scheduler

// Policy orders ready tasks. It is asked for a task's priority whenever the
// task enters a ready queue (and again when its critical path changes); the
// scheduler starts the highest-priority task a free worker can run,
// breaking ties in the order tasks became ready.
type Policy interface {
	Name() string
	Priority(t *Task) float64
}

// FIFO starts tasks in the order they became ready: what a simple farm does,
// and the baseline the other policies are measured against.
type FIFO struct{}

// Name identifies the policy in logs and flags.
func (FIFO) Name() string { return "fifo" }

// Priority is the same for every task, so ready order decides.
func (FIFO) Priority(*Task) float64 { return 0 }

// CriticalPath starts first the ready task with the longest expected chain
// of work after it. Long chains (a compiler, then everything built with it)
// then never wait behind short leaves, which is what shortens a whole
// system build.
type CriticalPath struct{}

// Name identifies the policy in logs and flags.
func (CriticalPath) Name() string { return "critical-path" }

// Priority is the task's bottom level in seconds.
func (CriticalPath) Priority(t *Task) float64 { return t.bottomLevel.Seconds() }

// Policies are the policies by name, for flags.
var Policies = map[string]Policy{"fifo": FIFO{}, "critical-path": CriticalPath{}}
