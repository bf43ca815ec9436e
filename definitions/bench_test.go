package definitions_test

import (
	"context"
	"testing"

	"distbuild/definitions"
	"distbuild/definitions/definitionstest"
)

// BenchmarkResolve measures what the controller does for every build
// request: open the tree, parse every morph the system needs, and compute
// every cache key. The target is under 50 ms for a 450-chunk system on one
// core: run with -cpu 1.
func BenchmarkResolve(b *testing.B) {
	tree := definitionstest.Generate(definitionstest.Realistic)
	for _, bc := range []struct {
		name, system string
	}{
		{"subset-450-chunks", tree.SubsetSystem},
		{"full-1000-chunks", tree.FullSystem},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var steps int
			for b.Loop() {
				defs, err := definitions.Open(tree.FS)
				if err != nil {
					b.Fatal(err)
				}
				g, err := defs.Resolve(context.Background(), bc.system, definitions.CommitsOnly{})
				if err != nil {
					b.Fatal(err)
				}
				steps = len(g.Steps)
			}
			b.ReportMetric(float64(steps), "steps")
		})
	}
}

func TestGeneratedTreeHasTheRealisticShape(t *testing.T) {
	tree := definitionstest.Generate(definitionstest.Realistic)
	defs, err := definitions.Open(tree.FS)
	if err != nil {
		t.Fatal(err)
	}
	g, err := defs.Resolve(context.Background(), tree.FullSystem, definitions.CommitsOnly{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[definitions.Kind]int{}
	crossStratumDeps, chunkDeps := 0, 0
	for _, s := range g.Steps {
		counts[s.Kind]++
		for _, d := range s.Deps {
			if s.Kind == definitions.KindChunk && d.Kind == definitions.KindStratum {
				crossStratumDeps++
			}
			if s.Kind == definitions.KindChunk && d.Kind == definitions.KindChunk {
				chunkDeps++
			}
		}
	}
	if counts[definitions.KindChunk] != 1000 || counts[definitions.KindStratum] != 150 || counts[definitions.KindSystem] != 1 {
		t.Errorf("generated %v, want 1000 chunks, 150 strata, 1 system", counts)
	}
	if crossStratumDeps < 500 || chunkDeps < 300 {
		t.Errorf("only %d stratum and %d chunk build-depends edges; the tree is too flat to be realistic", crossStratumDeps, chunkDeps)
	}
	sub, err := defs.Resolve(context.Background(), tree.SubsetSystem, definitions.CommitsOnly{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sub.Steps {
		if s.Kind == definitions.KindChunk {
			n++
		}
	}
	if n < 440 || n > 470 || n != tree.SubsetChunkCount {
		t.Errorf("subset system has %d chunks (generator says %d), want about 450", n, tree.SubsetChunkCount)
	}
}
