package step

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/provenance"
	"distbuild/worker/sandbox"
)

// TestABuiltStepsProvenanceVerifiesAndSaysHowItWasMade builds a chunk on a
// staged dependency through a real trove, then opens the provenance its
// manifest names with the worker's public key and checks every part the
// statement must hold against what the job was and what the step made.
func TestABuiltStepsProvenanceVerifiesAndSaysHowItWasMade(t *testing.T) {
	w := newTestRunner(t, sandbox.None, func(c *Config) { c.Cache = dialCache(t, startCache(t)) })
	dep := strings.Repeat("d", 64)
	storeChunk(t, w, dep, "libdep-libs", tarOf(t, map[string]string{"etc/dep.conf": "x"}))
	depManifest, err := w.manifest(context.Background(), dep)
	if err != nil {
		t.Fatal(err)
	}
	repo, commit := gitRepo(t, map[string]string{"hello.txt": "hello\n"})
	spec := chunkSpec(repo, commit, `mkdir -p "$DESTDIR/usr/share" && cp hello.txt "$DESTDIR/usr/share/"`)
	spec.Staging = []string{dep}
	doc := []byte(`{"format":"distbuild-cache-key/1","kind":"chunk"}`)
	sum := sha256.Sum256(doc)
	spec.CacheKey = hex.EncodeToString(sum[:])
	spec.Origin = &pb.StepOrigin{DefinitionsRepo: "http://trove/defs", DefinitionsCommit: strings.Repeat("c", 40),
		Morph: "systems/x.morph", StepFile: "strata/core.morph", CacheKeyDocument: doc}
	before := time.Now()
	j := runJob(t, w, spec)
	if j.phase != pb.JobPhase_JOB_PHASE_DONE {
		t.Fatalf("job ended in %v (%v); want done", j.phase, j.failure)
	}
	stored, err := w.manifest(context.Background(), spec.CacheKey)
	if err != nil {
		t.Fatal(err)
	}
	f, err := provenance.File(stored)
	if err != nil || f == nil {
		t.Fatalf("the stored manifest names no provenance (%v): %v", err, stored.Files)
	}
	st, _, err := provenance.Open(fetchBlob(t, w, f.Digest), w.cfg.SigningKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("the provenance does not verify with the worker's key: %v", err)
	}
	if err := provenance.CheckManifest(st, stored); err != nil {
		t.Errorf("the provenance does not match the manifest: %v", err)
	}
	if len(st.Subject) != 1 || st.Subject[0].Name != "hello-bins" {
		t.Errorf("subjects %v, want hello-bins only", st.Subject)
	}
	def := st.Predicate.BuildDefinition
	ext := def.ExternalParameters
	if ext.Definitions != (provenance.Definitions{Repo: "http://trove/defs", Commit: strings.Repeat("c", 40), Morph: "systems/x.morph", StepFile: "strata/core.morph"}) {
		t.Errorf("definitions %+v, want the job's origin", ext.Definitions)
	}
	if ext.Step.CacheKey != spec.CacheKey || string(ext.Step.CacheKeyDocument) != string(doc) || ext.Step.Name != "hello" || ext.Step.Kind != "chunk" {
		t.Errorf("step %+v (document %s), want the job's key and document", ext.Step, ext.Step.CacheKeyDocument)
	}
	wantDeps := []provenance.ResourceDescriptor{
		{Name: "source", URI: "git+" + repo + "@" + commit, Digest: map[string]string{"gitCommit": commit}},
		{Name: "libdep-libs", Digest: map[string]string{"sha256": depManifest.Files[0].Digest.Hash}},
	}
	if len(def.ResolvedDependencies) != 2 {
		t.Fatalf("dependencies %+v, want the source and the staged artifact", def.ResolvedDependencies)
	}
	for i, want := range wantDeps {
		got := def.ResolvedDependencies[i]
		if got.Name != want.Name || got.URI != want.URI || got.Digest[keyOf(want.Digest)] != want.Digest[keyOf(want.Digest)] {
			t.Errorf("dependency %d is %+v, want %+v", i, got, want)
		}
	}
	if def.ResolvedDependencies[1].Annotations["cacheKey"] != dep {
		t.Errorf("the staged artifact's cache key is %q, want %s", def.ResolvedDependencies[1].Annotations["cacheKey"], dep)
	}
	in := def.InternalParameters
	if len(in.Phases) != 1 || in.Phases[0].Name != "build" || !slices.Equal(in.Phases[0].Commands, spec.GetChunk().Phases[0].Commands) {
		t.Errorf("phases %+v, want the job's", in.Phases)
	}
	if !slices.Contains(in.Environment, "PREFIX=/usr") || !slices.ContainsFunc(in.Environment, func(e string) bool { return strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") }) {
		t.Errorf("environment %v lacks PREFIX and SOURCE_DATE_EPOCH", in.Environment)
	}
	if in.Worker != "test" || in.Sandbox != "none" || in.KeyID != provenance.KeyID(w.cfg.SigningKey.Public().(ed25519.PublicKey)) {
		t.Errorf("ran on %q with sandbox %q and key %q, want test, none and the worker's", in.Worker, in.Sandbox, in.KeyID)
	}
	run := st.Predicate.RunDetails
	startedOn, err1 := time.Parse(time.RFC3339Nano, run.Metadata.StartedOn)
	finishedOn, err2 := time.Parse(time.RFC3339Nano, run.Metadata.FinishedOn)
	if err1 != nil || err2 != nil || startedOn.Before(before.Add(-time.Second)) || finishedOn.Before(startedOn) || run.Metadata.InvocationID != spec.JobId {
		t.Errorf("metadata %+v, want the job's id and times from its run", run.Metadata)
	}
	if run.Builder.ID != provenance.BuilderID("test") || len(run.Byproducts) != 1 || run.Byproducts[0].Name != "log" {
		t.Errorf("builder %q, byproducts %+v: want the worker and its log", run.Builder.ID, run.Byproducts)
	}
}

// keyOf is a one-entry map's key.
func keyOf(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}
