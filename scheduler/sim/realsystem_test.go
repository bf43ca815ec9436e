package sim_test

import (
	"context"
	"testing"
	"time"

	"distbuild/definitions"
	"distbuild/definitions/definitionstest"
	"distbuild/scheduler/sim"
)

// The real-system DAG is built here, in the tests, rather than in package
// sim: the scheduler and everything under it stay free of the definitions
// format (STYLE.md), and only the tests need a definitions-shaped graph.

// realSystemConfig is a system the size of a desktop image: ~450 chunks over
// 70 strata, which resolves to 521 steps.
var realSystemConfig = definitionstest.Config{Strata: 70, Chunks: 450, Seed: 7}

// Stratum steps only record which chunk artifacts make them up, and a system
// step assembles and packs a root file system: short, and nearly the same
// for every system, so they get fixed durations.
const (
	stratumDuration = time.Second
	systemDuration  = 30 * time.Second
)

// realSystem resolves a generated definitions tree into its real build graph
// (chunks after their build-depends and their stratum's build-depends,
// strata after their chunks, the system last) and gives each chunk a
// ChunkDuration drawn from seed. For the farm's costs, chunks and the
// system stage what the controller has them stage (definitions'
// Graph.Staging: every chunk they depend on transitively), each chunk's
// Output is a ChunkArtifact drawn from a second stream of the same seed
// (so the durations are those of a DAG without sizes), a stratum's is
// nothing worth counting (it only lists its chunks' artifacts), and the
// system's is its root file system: as big as everything it stages.
func realSystem(tb testing.TB, cfg definitionstest.Config, seed uint64) sim.DAG {
	tb.Helper()
	d, _ := realSystemAndKinds(tb, cfg, seed)
	return d
}

// firstBuildEstimate is what the controller tells the scheduler about a step
// it has never built (controller.defaultDurations): every chunk a minute.
var firstBuildEstimate = map[definitions.Kind]time.Duration{
	definitions.KindChunk:   time.Minute,
	definitions.KindStratum: time.Second,
	definitions.KindSystem:  30 * time.Second,
}

// realSystemAndKinds is realSystem plus what kind each step is, by name.
func realSystemAndKinds(tb testing.TB, cfg definitionstest.Config, seed uint64) (sim.DAG, map[string]definitions.Kind) {
	tb.Helper()
	tree := definitionstest.Generate(cfg)
	defs, err := definitions.Open(tree.FS)
	if err != nil {
		tb.Fatal(err)
	}
	g, err := defs.Resolve(context.Background(), tree.FullSystem, definitions.CommitsOnly{})
	if err != nil {
		tb.Fatal(err)
	}
	r, sizes := sim.NewRand(seed), sim.NewRand(^seed)
	d := sim.DAG{Name: "real-system", Steps: make([]sim.Step, len(g.Steps))}
	kinds := make(map[string]definitions.Kind, len(g.Steps))
	for i, st := range g.Steps {
		kinds[st.Name] = st.Kind
		s := sim.Step{Name: st.Name}
		for _, dep := range st.Deps {
			s.Deps = append(s.Deps, dep.Index())
		}
		switch st.Kind {
		case definitions.KindChunk:
			s.Duration = sim.ChunkDuration(r)
			s.Output = sim.ChunkArtifact(sizes, s.Duration)
		case definitions.KindStratum:
			s.Duration = stratumDuration
		default:
			s.Duration = systemDuration
		}
		if st.Kind != definitions.KindStratum {
			for _, c := range g.Staging(st) {
				s.Stages = append(s.Stages, c.Index())
				if st.Kind == definitions.KindSystem {
					s.Output.Bytes += d.Steps[c.Index()].Output.Bytes
					s.Output.Files += d.Steps[c.Index()].Output.Files
				}
			}
		}
		if st.Kind == definitions.KindSystem {
			s.Output.Blobs = 1
		}
		d.Steps[i] = s
	}
	if err := d.Validate(); err != nil {
		tb.Fatal(err)
	}
	return d, kinds
}
