package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"distbuild/artifactcache"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

// TestTheDemoBuildsByteForByteTheSameOnAnotherFarm builds the whole demo
// system on two farms that share nothing (their own troves, controllers,
// and workers under other names in other directories) and checks that
// every step's artifacts are byte-identical: packing normalises owners,
// modes and times, and SOURCE_DATE_EPOCH is the source commit's date, so a
// step's output depends only on its inputs.
func TestTheDemoBuildsByteForByteTheSameOnAnotherFarm(t *testing.T) {
	a := startFarm(t, "worker-a")
	b := startFarm(t, "worker-b")
	steps := a.graph(demoSystem)
	if bSteps := b.graph(demoSystem); !maps.EqualFunc(steps, bSteps, func(x, y graphStep) bool { return x.CacheKey == y.CacheKey }) {
		t.Fatal("the two farms' checkouts resolve to different cache keys")
	}
	for _, f := range []*farm{a, b} {
		if r := f.initiator("build", demoSystem); r.code != 0 {
			t.Fatalf("build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	artifactsOf := func(f *farm, key string) map[string]string {
		t.Helper()
		c, err := artifactcache.Dial(f.cache)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k, err := digest.ParseCacheKey(key)
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.GetManifest(context.Background(), k)
		if err != nil {
			t.Fatalf("%s's manifest for %s: %v", f.dir, key, err)
		}
		out := map[string]string{}
		for _, file := range m.Files {
			if file.Role == pb.FileRole_FILE_ROLE_ARTIFACT {
				out[file.Name] = fmt.Sprintf("%s/%d", file.Digest.Hash, file.Digest.SizeBytes)
			}
		}
		return out
	}
	compared := 0
	for _, name := range slices.Sorted(maps.Keys(steps)) {
		got, want := artifactsOf(b, steps[name].CacheKey), artifactsOf(a, steps[name].CacheKey)
		if !maps.Equal(got, want) {
			t.Errorf("%s differs between the farms:\n  a: %v\n  b: %v", name, want, got)
		}
		compared += len(want)
	}
	if compared == 0 {
		t.Fatal("no artifacts were compared")
	}
	t.Logf("%d artifacts of %d steps are byte-identical", compared, len(steps))
}
