// Package scheduler decides which build step runs next and where. It is a
// plain state machine over a DAG of tasks: no goroutines, no clock, no I/O,
// and no knowledge of the definitions format. The controller feeds it
// builds, workers and job results and carries out the assignments it makes;
// a simulator can drive the same code in virtual time.
//
// Two ideas from remote-execution schedulers shape it. Tasks are deduplicated
// by cache key, so a step wanted by several concurrent builds runs once and
// its result goes to all of them. And a build only holds a handle on the
// tasks it wants: cancelling one build stops a task only when no other build
// still wants it.
package scheduler
