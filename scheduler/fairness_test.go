package scheduler_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"distbuild/scheduler"
)

func TestASmallBuildDoesNotWaitBehindABigOne(t *testing.T) {
	s := newScheduler(1, 2)
	var big []scheduler.TaskSpec
	for i := range 100 {
		big = append(big, spec(fmt.Sprintf("big-%03d", i)))
	}
	addBuild(t, s, "big", false, big...)
	addBuild(t, s, "small", false, spec("small-1"), spec("small-2"), spec("small-3"))
	// Run the farm step by step: start what can start, finish the oldest.
	var starts []string
	var running []scheduler.Assignment
	for len(starts) < 20 {
		as, _ := s.Dispatch()
		for _, a := range as {
			starts = append(starts, a.Task.Name)
		}
		running = append(running, as...)
		s.Finished(running[0].JobID)
		running = running[1:]
	}
	last := 0
	for i, name := range starts {
		if strings.HasPrefix(name, "small-") {
			last = i + 1
		}
	}
	if last == 0 || last > 8 {
		t.Errorf("start order %v: the small build's last step started at position %d; it should share the worker from the start", starts, last)
	}
}

func TestStepsGoToTheWorkerHoldingTheirInputs(t *testing.T) {
	s := newScheduler(3, 1)
	s.WorkerHolds("c", []string{"zlib", "libpng"})
	s.WorkerHolds("b", []string{"zlib"})
	app := spec("app")
	app.Inputs = slices.Values([]string{"zlib", "libpng"})
	addBuild(t, s, "b1", false, app)
	if a := dispatch(s)["app"]; a.Worker != "c" {
		t.Errorf("app went to %s, want c, which holds both of its inputs", a.Worker)
	}
	// A worker learns what it built and staged.
	s2 := newScheduler(2, 1)
	first := spec("first")
	first.Inputs = slices.Values([]string{"dep"})
	addBuild(t, s2, "b1", false, first)
	a := dispatch(s2)["first"]
	s2.Finished(a.JobID)
	second := spec("second")
	second.Inputs = slices.Values([]string{"dep", "first"})
	addBuild(t, s2, "b2", false, cached(spec("first")), second)
	if b := dispatch(s2)["second"]; b.Worker != a.Worker {
		t.Errorf("second went to %s, want %s, which built first and staged dep", b.Worker, a.Worker)
	}
}
