package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// NewRand is the random source every generator here uses: seeded, so a
// generated DAG is the same on every machine and every run.
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ChunkDuration draws a chunk's build time with the long tail real systems
// have: most chunks are small libraries and tools taking 30 s to 3 min
// (log-normal, median 80 s), and about one in forty is a compiler, kernel,
// browser engine or similar taking 20 to 60 min. The tail is what makes the
// order of work matter: a big chunk started late finishes late whatever
// else the farm does. Durations are whole seconds, which keeps timelines
// readable.
func ChunkDuration(r *rand.Rand) time.Duration {
	if r.IntN(40) == 0 {
		return time.Duration(20*60+r.IntN(40*60+1)) * time.Second
	}
	const median, sigma = 80.0, 0.55 // seconds; ±2σ ≈ 27 s … 240 s
	secs := median * math.Exp(sigma*r.NormFloat64())
	return time.Duration(max(1, math.Round(secs))) * time.Second
}

// ChainPlusMany is a chain of chain steps of chainStep each (think
// toolchain bootstrap: each stage builds the next) and many independent
// steps of manyStep each, all ready at once. It is the case where starting
// work in arrival order hurts most: each link of the chain becomes ready
// after the short steps are queued, so FIFO makes it wait behind them, and
// the chain, which alone sets the makespan on a big farm, finishes late.
//
// The chain's first step comes first in the build order, the order most
// favourable to FIFO, so whatever FIFO loses is lost on the later links
// rather than on a contrived submission order.
func ChainPlusMany(chain int, chainStep time.Duration, many int, manyStep time.Duration) DAG {
	d := DAG{Name: "chain-plus-many", Steps: make([]Step, 0, chain+many)}
	for i := range chain {
		s := Step{Name: fmt.Sprintf("chain-%02d", i), Duration: chainStep}
		if i > 0 {
			s.Deps = []int{i - 1}
		}
		d.Steps = append(d.Steps, s)
	}
	for i := range many {
		d.Steps = append(d.Steps, Step{Name: fmt.Sprintf("leaf-%03d", i), Duration: manyStep})
	}
	return d
}

// WideShallow is n steps in layers layers (sizes shrinking, e.g. half, a
// third, a sixth of n for three layers), each step after the first layer
// depending on one to three random steps of the layer before, with
// ChunkDuration durations: a flat application stratum on top of a few
// libraries. There is little chain to find, so it checks that a
// duration-aware policy costs nothing where the work is mostly parallel.
func WideShallow(seed uint64, n, layers int) DAG {
	r := NewRand(seed)
	d := DAG{Name: "wide-shallow", Steps: make([]Step, 0, n)}
	// Layer k gets a share proportional to layers-k, so the first is widest.
	total := layers * (layers + 1) / 2
	prevStart, prevEnd := 0, 0
	for k := range layers {
		size := n * (layers - k) / total
		if k == layers-1 {
			size = n - len(d.Steps)
		}
		start := len(d.Steps)
		for i := range size {
			s := Step{Name: fmt.Sprintf("l%d-%03d", k, i), Duration: ChunkDuration(r)}
			if k > 0 {
				seen := map[int]bool{}
				for range 1 + r.IntN(3) {
					dep := prevStart + r.IntN(prevEnd-prevStart)
					if !seen[dep] {
						seen[dep] = true
						s.Deps = append(s.Deps, dep)
					}
				}
			}
			d.Steps = append(d.Steps, s)
		}
		prevStart, prevEnd = start, len(d.Steps)
	}
	return d
}

// ChunkArtifact draws the size of what a chunk that builds for d installs,
// for pricing staging and transfers (Costs). Most chunks are small: bytes
// log-normal with a median of 3 MB (±2σ ≈ 0.3 MB … 27 MB); the long-tailed
// ones (ChunkDuration's 20 min or more: compilers, kernels, browser
// engines) install 50-300 MB. Files average a log-normal 32 KB each
// (median; ±2σ ≈ 8 … 130 KB), and each chunk splits into 2-4 artifacts
// (-bins, -libs, -devel, -misc), each holding at least one file. A 450-chunk system then holds a few
// gigabytes in a few hundred thousand files, a desktop image with its
// development files, and a late chunk stages hundreds of artifacts and
// gigabytes (BENCHMARKS.md has the figures for the simulated system).
func ChunkArtifact(r *rand.Rand, d time.Duration) Artifact {
	mb := 3 * math.Exp(1.1*r.NormFloat64())
	if d >= 20*time.Minute {
		mb = 50 + 250*r.Float64()
	}
	bytes := int64(mb * 1e6)
	fileBytes := 32e3 * math.Exp(0.7*r.NormFloat64())
	blobs := 2 + r.IntN(3)
	return Artifact{Bytes: bytes, Files: max(blobs, int(float64(bytes)/fileBytes)), Blobs: blobs}
}
