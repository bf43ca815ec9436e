package controller_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// TestJobsCarryWhereTheirStepComesFrom checks what a worker's signed
// provenance takes from the job: the definitions repository, commit and
// morph of the build, the file defining the step, and the document whose
// SHA-256 is the step's cache key.
func TestJobsCarryWhereTheirStepComesFrom(t *testing.T) {
	f := startFarmWith(t, 10*time.Second, testDefinitions)
	w := f.worker("w1", 4)
	if got := describe(f.start("systems/test.morph").wait()); !strings.HasSuffix(got, "BUILD-FINISHED") {
		t.Fatalf("build: %s", got)
	}
	if len(w.jobs) == 0 {
		t.Fatal("the worker got no jobs")
	}
	for name, job := range w.jobs {
		o := job.GetOrigin()
		if o.GetDefinitionsRepo() != f.defsRepo || o.GetDefinitionsCommit() != f.commit || o.GetMorph() != "systems/test.morph" {
			t.Errorf("%s: origin %s %s %s, want %s %s systems/test.morph", name, o.GetDefinitionsRepo(), o.GetDefinitionsCommit(), o.GetMorph(), f.defsRepo, f.commit)
		}
		if !strings.HasSuffix(o.GetStepFile(), ".morph") {
			t.Errorf("%s: step file %q is not a morph", name, o.GetStepFile())
		}
		if sum := sha256.Sum256(o.GetCacheKeyDocument()); job.CacheKey != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: the SHA-256 of the cache-key document is not the job's cache key", name)
		}
	}
}
