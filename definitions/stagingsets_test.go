package definitions_test

import (
	"slices"
	"testing"

	"distbuild/definitions/definitionstest"
)

func TestStagingSetsGiveEveryStepsStagingInBuildOrder(t *testing.T) {
	for _, cfg := range []definitionstest.Config{
		{Strata: 5, Chunks: 70, Seed: 1},
		{Strata: 20, Chunks: 400, Seed: 3}, // more than 64 steps per word boundary
	} {
		tree := definitionstest.Generate(cfg)
		g, err := resolve(t, tree.FS, tree.FullSystem)
		if err != nil {
			t.Fatal(err)
		}
		sets := g.StagingSets()
		nonEmpty := 0
		for _, s := range g.Steps {
			want := g.Staging(s)
			got := slices.Collect(sets.Staging(s))
			if !slices.Equal(got, want) {
				t.Fatalf("%d chunks: staging of %s from the sets: %d steps, want Graph.Staging's %d (in the same order)", cfg.Chunks, s.Name, len(got), len(want))
			}
			if len(want) > 0 {
				nonEmpty++
			}
		}
		if nonEmpty < len(g.Steps)/2 {
			t.Errorf("%d chunks: only %d of %d steps stage anything; the comparison shows little", cfg.Chunks, nonEmpty, len(g.Steps))
		}
	}
}

func TestStagingSetsStopWhenTheCallerDoes(t *testing.T) {
	tree := definitionstest.Generate(definitionstest.Config{Strata: 5, Chunks: 70, Seed: 1})
	g, err := resolve(t, tree.FS, tree.FullSystem)
	if err != nil {
		t.Fatal(err)
	}
	system := g.Systems[0]
	n := 0
	for range g.StagingSets().Staging(system) {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 || len(g.Staging(system)) <= 3 {
		t.Errorf("stopped after %d of %d", n, len(g.Staging(system)))
	}
}
