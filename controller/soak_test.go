package controller_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"distbuild/definitions"
	"distbuild/definitions/definitionstest"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

// TestSoakWithRandomWorkerKills runs 2,000 steps while workers keep dying
// (their streams drop, as when a machine dies) and new ones join. Every
// build must end cleanly: success, or a failure that names the step that
// ran out of attempts. Afterwards no goroutine or file descriptor may be
// left behind by the whole farm.
func TestSoakWithRandomWorkerKills(t *testing.T) {
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	t.Run("farm", func(t *testing.T) { soak(t) })
	waitFor(t, "the farm's goroutines and files to be released", func() bool {
		return runtime.NumGoroutine() <= goroutines && openFDs(t) <= fds
	})
}

func soak(t *testing.T) {
	tree := definitionstest.Generate(definitionstest.Config{Strata: 20, Chunks: 2000, SubsetChunks: 600, Seed: 5})
	f := startFarmWith(t, 2*time.Second, treeFiles(tree))
	ctx := context.Background()
	blob, err := f.cache.UploadBytes(ctx, []byte("log"))
	if err != nil {
		t.Fatal(err)
	}
	defs, err := definitions.Open(tree.FS)
	if err != nil {
		t.Fatal(err)
	}
	g, err := defs.Resolve(ctx, tree.FullSystem, definitions.CommitsOnly{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var workers []*testWorker
	join := func() {
		workers = append(workers, f.noopWorker(fmt.Sprintf("w%d", len(workers)), 4, blob.Proto()))
	}
	for range 3 {
		join()
	}
	builds := []*buildWatch{f.start(tree.FullSystem), f.start(tree.SubsetSystem)}
	ended := make(chan []*pb.BuildEvent, len(builds))
	for _, b := range builds {
		go func() {
			// Not b.wait: t.Fatal must not be called off the test goroutine.
			var events []*pb.BuildEvent
			for {
				resp, err := b.stream.Recv()
				if err != nil {
					ended <- append(events, &pb.BuildEvent{Event: &pb.BuildEvent_BuildFailed{BuildFailed: &pb.BuildFailed{Reason: "stream broke: " + err.Error()}}})
					return
				}
				events = append(events, resp.Event)
				if e := resp.Event; e.GetBuildFinished() != nil || e.GetBuildFailed() != nil || e.GetBuildCancelled() != nil {
					ended <- events
					return
				}
			}
		}()
	}
	kills, cleanFailures := 0, 0
	deadline := time.After(90 * time.Second)
	for done := 0; done < len(builds); {
		select {
		case events := <-ended:
			done++
			last := events[len(events)-1]
			switch {
			case last.GetBuildFinished() != nil:
			case last.GetBuildFailed() != nil && strings.Contains(last.GetBuildFailed().Reason, "times for setup reasons"):
				t.Logf("a build failed cleanly: %s", last.GetBuildFailed().Reason)
				cleanFailures++
			default:
				t.Errorf("a build ended with %s", eventName(last))
			}
		case <-time.After(time.Duration(10+rng.IntN(30)) * time.Millisecond):
			// Kill a random live worker and let a new one join.
			i := rng.IntN(len(workers))
			if workers[i].cancel != nil {
				workers[i].cancel()
				workers[i].cancel = nil
				kills++
				join()
			}
		case <-deadline:
			t.Fatalf("builds did not end within 90s (%d workers killed)", kills)
		}
	}
	// Too few kills prove little, unless they ran a step out of
	// attempts: the builds then end early, and cleanly, by design.
	if kills < 10 && cleanFailures == 0 {
		t.Errorf("only %d workers were killed; the soak proves little", kills)
	}
	// The full build succeeded unless it failed cleanly above: then every
	// step it reported finished must really be in the cache.
	var keys []digest.CacheKey
	for _, s := range g.Steps {
		keys = append(keys, s.CacheKey)
	}
	_, missing, err := f.cache.FindMissing(ctx, nil, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d steps, %d workers killed, %d of the full system's artifacts missing", len(g.Steps), kills, len(missing))
	for _, w := range workers {
		if w.cancel != nil {
			w.cancel()
		}
	}
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
