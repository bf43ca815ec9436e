package controller_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

// multiArchDefinitions is testDefinitions with the same system for
// armv7lhf, and a cluster of the two.
func multiArchDefinitions() map[string]string {
	defs := maps.Clone(testDefinitions)
	arm := strings.Replace(defs["systems/test.morph"], "arch: x86_64", "arch: armv7lhf", 1)
	defs["systems/test-armv7lhf.morph"] = strings.Replace(arm, "name: test-system", "name: test-system-armv7lhf", 1)
	defs["clusters/both.morph"] = "name: both\nkind: cluster\nsystems:\n- morph: systems/test.morph\n- morph: systems/test-armv7lhf.morph\n"
	return defs
}

var (
	x86Steps = []string{"apps", "base", "compiler", "goodbye", "hello", "libc", "test-system"}
	armSteps = []string{"apps@armv7lhf", "base@armv7lhf", "compiler@armv7lhf", "goodbye@armv7lhf", "hello@armv7lhf", "libc@armv7lhf", "test-system-armv7lhf"}
)

func TestAMultiArchClusterRunsEachStepOnAWorkerOfItsArchitecture(t *testing.T) {
	f := startFarmWith(t, 10*time.Second, multiArchDefinitions())
	x86 := f.worker("x86", 4)
	arm := f.register(&pb.WorkerRegistration{Name: "arm", Slots: 4, Arch: "armv7lhf"})
	events := f.start("clusters/both.morph").wait()
	if got := describe(events); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("build: %s", got)
	}
	if gr := find(events, func(e *pb.BuildEvent) *pb.GraphResolved { return e.GetGraphResolved() }); len(gr) != 1 || gr[0].TotalSteps != 14 {
		t.Errorf("graph resolved %v, want the 7 steps once for each architecture", gr)
	}
	for _, tc := range []struct {
		w    *testWorker
		arch string
		want []string
	}{{x86, "x86_64", x86Steps}, {arm, "armv7lhf", armSteps}} {
		got := slices.Sorted(slices.Values(tc.w.startedSteps()))
		if !slices.Equal(got, tc.want) {
			t.Errorf("the %s worker ran %v, want %v", tc.arch, got, tc.want)
		}
		tc.w.mu.Lock()
		for name, j := range tc.w.jobs {
			if j.Arch != tc.arch {
				t.Errorf("the %s worker's job for %s is for %q", tc.arch, name, j.Arch)
			}
		}
		tc.w.mu.Unlock()
	}
}

// A build's steps that no connected worker's architecture matches wait,
// and the build with them, until such a worker connects: for one
// architecture of a cluster as for a single-architecture build. The other
// architecture's steps build meanwhile.
func TestStepsOfAnArchitectureNoWorkerHasWaitForOne(t *testing.T) {
	f := startFarmWith(t, 10*time.Second, multiArchDefinitions())
	x86 := f.worker("x86", 4)
	cluster, single := f.start("clusters/both.morph"), f.start("systems/test-armv7lhf.morph")
	clusterID, singleID := cluster.next().GetAccepted().GetBuildId(), single.next().GetAccepted().GetBuildId()
	status := func(id string) (pb.BuildState, map[string]pb.StepState) {
		st, err := f.builds.Status(context.Background(), &pb.StatusRequest{BuildId: id})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]pb.StepState{}
		for _, s := range st.Steps {
			out[s.Step.StepName] = s.State
		}
		return st.Build.State, out
	}
	waitFor(t, "the cluster's x86_64 steps", func() bool {
		_, steps := status(clusterID)
		return !slices.ContainsFunc(x86Steps, func(n string) bool { return steps[n] != pb.StepState_STEP_STATE_FINISHED })
	})
	// The single build's steps have no @armv7lhf: it is for one
	// architecture.
	for id, names := range map[string][]string{clusterID: armSteps, singleID: x86Steps} {
		state, steps := status(id)
		if state != pb.BuildState_BUILD_STATE_RUNNING {
			t.Errorf("build %s is %v, want running while steps wait for a worker", id, state)
		}
		for _, name := range names {
			if name == "test-system" {
				name = "test-system-armv7lhf"
			}
			if steps[name] != pb.StepState_STEP_STATE_WAITING {
				t.Errorf("build %s: armv7lhf step %s is %v, want waiting", id, name, steps[name])
			}
		}
	}
	if got := slices.Sorted(slices.Values(x86.startedSteps())); !slices.Equal(got, x86Steps) {
		t.Errorf("the x86_64 worker ran %v, want only the x86_64 steps %v", got, x86Steps)
	}
	f.register(&pb.WorkerRegistration{Name: "arm", Slots: 4, Arch: "armv7lhf"})
	for _, b := range []*buildWatch{cluster, single} {
		if got := describe(b.wait()); !strings.HasSuffix(got, "BUILD-FINISHED") {
			t.Errorf("once an armv7lhf worker connects: %s", got)
		}
	}
}
