package sim_test

import (
	"testing"
	"time"

	"distbuild/scheduler"
	"distbuild/scheduler/sim"
)

// The figures: three DAG shapes at 2, 8 and 32 workers. A worker
// here has one slot, so "workers" is the farm's parallelism, as in the
// issue's lower bound (total work / workers).
var (
	workerCounts = []int{2, 8, 32}
	policies     = []scheduler.Policy{scheduler.FIFO{}, scheduler.CriticalPath{}}
)

// dags are the three shapes: a real system (~450 chunks, long-tailed
// durations), a 20-step chain of 5 min beside 400 independent 1-min steps,
// and ~500 steps in three wide layers.
func dags(tb testing.TB) []sim.DAG {
	return []sim.DAG{
		realSystem(tb, realSystemConfig, 1),
		sim.ChainPlusMany(20, 5*time.Minute, 400, time.Minute),
		sim.WideShallow(1, 500, 3),
	}
}

func run(tb testing.TB, p scheduler.Policy, d sim.DAG, farm sim.Farm) sim.Result {
	tb.Helper()
	res, err := sim.Run(p, d, farm)
	if err != nil {
		tb.Fatalf("Run(%s, %s, %+v): %v", p.Name(), d.Name, farm, err)
	}
	return res
}
