package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "distbuild/proto/distbuild/v1"
)

// noOpSteps is how many no-op chunks BenchmarkNoOpSteps builds per run.
const noOpSteps = 100

// BenchmarkNoOpSteps measures the farm's fixed cost per step: 100 chunks
// whose build does nothing, on the real binaries (a trove, a controller and
// two workers with one slot each), under each sandbox. It reports the wall
// time per step per slot and, from the steps' profiles, the mean time each
// phase took on the worker; what the phases do not account for is the time
// between steps: dispatch, reports and the controller's confirmations.
// Target (issue 18): under 25 ms per step per slot with bubblewrap.
func BenchmarkNoOpSteps(b *testing.B) {
	for _, sandbox := range []string{"bwrap", "none"} {
		b.Run("sandbox="+sandbox, func(b *testing.B) { benchmarkNoOpSteps(b, sandbox) })
	}
}

func benchmarkNoOpSteps(b *testing.B, sandbox string) {
	var steps []sleepStep
	for i := range noOpSteps {
		steps = append(steps, sleepStep{name: fmt.Sprintf("noop-%03d", i)})
	}
	const slots = 2 // two workers, one slot each
	f := startSleepFarm(b, 2, 1, sandbox)

	var wall time.Duration
	phases := map[string]time.Duration{}
	var order []string
	for b.Loop() {
		wall += f.build(b, steps)
		b.StopTimer()
		for _, p := range stepPhases(b, f) {
			if _, seen := phases[p.Name]; !seen {
				order = append(order, p.Name)
			}
			phases[p.Name] += p.Duration.AsDuration()
		}
		b.StartTimer()
	}
	n := float64(b.N * noOpSteps)
	b.ReportMetric(wall.Seconds()*1000*slots/n, "ms/step/slot")
	var accounted time.Duration
	for _, name := range order {
		accounted += phases[name]
		b.ReportMetric(phases[name].Seconds()*1000/n, name+"-ms")
	}
	b.ReportMetric((wall*slots-accounted).Seconds()*1000/n, "between-steps-ms")
}

// stepPhases returns every phase of every chunk step of f's newest build.
func stepPhases(b *testing.B, f *sleepFarm) []*pb.PhaseTime {
	var out []*pb.PhaseTime
	for _, s := range f.newestSteps(b) {
		if s.Step.Kind == pb.StepKind_STEP_KIND_CHUNK && s.State == pb.StepState_STEP_STATE_FINISHED {
			out = append(out, s.GetProfile().GetPhases()...)
		}
	}
	return out
}

// newestSteps returns the steps of the farm's newest build, in build
// order.
func (f *sleepFarm) newestSteps(b *testing.B) []*pb.StepStatus {
	conn, err := grpc.NewClient(f.controller, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	builds := pb.NewBuildServiceClient(conn)
	ctx := context.Background()
	list, err := builds.List(ctx, &pb.ListRequest{IncludeEnded: true})
	if err != nil || len(list.Builds) == 0 {
		b.Fatalf("listing builds: %v", err)
	}
	st, err := builds.Status(ctx, &pb.StatusRequest{BuildId: list.Builds[0].BuildId})
	if err != nil {
		b.Fatal(err)
	}
	return st.Steps
}
