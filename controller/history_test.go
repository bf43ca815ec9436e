package controller_test

import (
	"context"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

// TestLearntDurationsDecideWhatStartsFirst: with one slot, the step known
// to take longest must start first (critical path), and what is known must
// survive a restart.
func TestLearntDurationsDecideWhatStartsFirst(t *testing.T) {
	defs := maps.Clone(testDefinitions)
	// Two independent apps chunks, written quick first, so that without
	// history the quick one starts first.
	defs["strata/apps.morph"] = strings.Replace(defs["strata/apps.morph"], "- name: hello", "- name: quick", 1)
	defs["strata/apps.morph"] = strings.Replace(defs["strata/apps.morph"], "- name: goodbye", "- name: slow", 1)
	f := startFarmWith(t, 10*time.Second, defs)
	w := f.worker("w1", 1)
	w.took["slow"], w.took["quick"] = time.Hour, time.Second
	if got := describe(f.start("systems/test.morph").wait()); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("first build: %s", got)
	}
	first := w.startedSteps()
	if slices.Index(first, "quick") > slices.Index(first, "slow") {
		t.Fatalf("without history, slow started before quick (%v): the test proves nothing", first)
	}

	f.restartController()
	// New commits for both chunks: new keys, same names, so both rebuild.
	changed := strings.ReplaceAll(defs["strata/apps.morph"], "3333333333333333333333333333333333333333", "3333333333333333333333333333333333333334")
	changed = strings.ReplaceAll(changed, "4444444444444444444444444444444444444444", "4444444444444444444444444444444444444445")
	f.commit = f.commitDefinitions(map[string]string{"strata/apps.morph": changed})
	w2 := f.worker("w2", 1)
	if got := describe(f.start("systems/test.morph").wait()); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("second build: %s", got)
	}
	second := w2.startedSteps()
	if slices.Index(second, "slow") > slices.Index(second, "quick") {
		t.Errorf("after learning that slow takes an hour, the rebuild started %v: slow should go first", second)
	}
}

func TestAttachingFromBeyondTheHistoryReplaysNothingAndCrashesNothing(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.worker("w1", 4)
	id := f.start("systems/test.morph").wait()[0].GetAccepted().GetBuildId()
	for _, from := range []uint64{100, 1 << 63, 1<<64 - 1} {
		attach, err := f.builds.Attach(context.Background(), &pb.AttachRequest{BuildId: id, FromSequence: from})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := attach.Recv(); err != io.EOF {
			t.Errorf("attach from %d: %v %v, want the ended build's stream to end with nothing replayed", from, resp, err)
		}
	}
	if _, err := f.builds.List(context.Background(), &pb.ListRequest{}); err != nil {
		t.Fatalf("the controller no longer answers: %v", err)
	}
}
