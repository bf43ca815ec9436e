package definitions_test

import (
	"crypto/sha256"
	"testing"

	"distbuild/definitions"
)

// TestEveryStepsCacheKeyIsTheHashOfItsDocument checks what signed
// provenance relies on: the document a step publishes is exactly what its
// key is the SHA-256 of, for chunks, strata and systems alike.
func TestEveryStepsCacheKeyIsTheHashOfItsDocument(t *testing.T) {
	g := mustResolve(t, apply(t, nil))
	kinds := map[definitions.Kind]bool{}
	for _, s := range g.Steps {
		kinds[s.Kind] = true
		if got := sha256.Sum256(s.CacheKeyDocument()); got != [32]byte(s.CacheKey) {
			t.Errorf("%s: the SHA-256 of its cache-key document is not its cache key", s.Name)
		}
	}
	if !kinds[definitions.KindChunk] || !kinds[definitions.KindStratum] || !kinds[definitions.KindSystem] {
		t.Errorf("the fixture has kinds %v, want chunks, strata and systems", kinds)
	}
}
