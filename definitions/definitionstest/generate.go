// Package definitionstest generates realistic definitions trees for tests and
// benchmarks: a bootstrap stratum, strata that build-depend on earlier ones,
// chunks with and without chunk morphs, and build-depends inside strata, in
// the proportions real Baserock definitions have.
package definitionstest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"
)

// Config shapes a generated tree.
type Config struct {
	// Strata is how many strata to generate (the first is a bootstrap
	// stratum with no build-depends).
	Strata int
	// Chunks is how many chunks to spread over the strata.
	Chunks int
	// SubsetChunks, when positive, also generates systems/subset-system.morph
	// holding the first strata up to about this many chunks.
	SubsetChunks int
	// Seed makes the tree reproducible.
	Seed uint64
}

// Realistic is about the size of a real definitions repository: ~150 strata
// and ~1000 chunks, with a subset system the size of a desktop system.
var Realistic = Config{Strata: 150, Chunks: 1000, SubsetChunks: 450, Seed: 1}

// Tree is a generated definitions tree.
type Tree struct {
	// FS holds the files, ready for definitions.Open.
	FS fstest.MapFS
	// FullSystem is the path of the system containing every stratum.
	FullSystem string
	// SubsetSystem is the path of the smaller system, when one was asked for.
	SubsetSystem string
	// SubsetChunkCount is how many chunks the subset system holds.
	SubsetChunkCount int
}

// defaults uses anchors and aliases the way real DEFAULTS files do.
const defaults = `build-systems:
  manual:
    configure-commands: []
    build-commands: []
    install-commands: []
    strip-commands: []
  autotools:
    configure-commands:
    - ./configure --prefix="$PREFIX"
    build-commands: &make
    - make
    install-commands: &make-install
    - make DESTDIR="$DESTDIR" install
    strip-commands: &strip
    - find "$DESTDIR" -type f -name '*.so*' -exec strip --strip-unneeded {} +
  cmake:
    configure-commands:
    - cmake -DCMAKE_INSTALL_PREFIX="$PREFIX" .
    build-commands: *make
    install-commands: *make-install
    strip-commands: *strip
  python3-distutils:
    configure-commands: []
    build-commands:
    - python3 setup.py build
    install-commands:
    - python3 setup.py install --prefix "$PREFIX" --root "$DESTDIR"
    strip-commands: *strip
split-rules:
  chunk:
  - artifact: -bins
    include: [ '(usr/)?s?bin/.*' ]
  - artifact: -libs
    include: [ '(usr/)?lib(32|64)?/lib[^/]*\.so(\.\d+)*' ]
  - artifact: -devel
    include: [ '(usr/)?include/.*', '(usr/)?lib/pkgconfig/.*\.pc' ]
  - artifact: -misc
    include: [ '.*' ]
  stratum:
  - artifact: -devel
    include: [ '.*-devel' ]
  - artifact: -runtime
    include: [ '.*' ]
`

var buildSystems = []string{"autotools", "autotools", "cmake", "python3-distutils", "manual"}

// Generate builds a tree. Stratum i build-depends on one to three earlier
// strata; chunk j of a stratum build-depends on up to two earlier chunks of
// the same stratum; about 40% of chunks have a chunk morph of their own.
func Generate(cfg Config) *Tree {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	fsys := fstest.MapFS{
		"VERSION":  {Data: []byte("version: 8\n")},
		"DEFAULTS": {Data: []byte(defaults)},
	}
	counts := spread(rng, cfg.Chunks, cfg.Strata)
	names := make([]string, cfg.Strata)
	for i := range names {
		names[i] = fmt.Sprintf("stratum-%03d", i)
	}
	names[0] = "build-essential"
	chunkSeq := 0
	for i, name := range names {
		var b strings.Builder
		fmt.Fprintf(&b, "name: %s\nkind: stratum\ndescription: Generated stratum %d.\n", name, i)
		if i > 0 {
			b.WriteString("build-depends:\n")
			deps := map[int]bool{i - 1 - rng.IntN(min(i, 5)): true}
			for k := rng.IntN(3); k > 0; k-- {
				deps[rng.IntN(i)] = true
			}
			for d := range i {
				if deps[d] {
					fmt.Fprintf(&b, "- morph: strata/%s.morph\n", names[d])
				}
			}
		}
		b.WriteString("chunks:\n")
		var chunkNames []string
		for j := range counts[i] {
			chunk := fmt.Sprintf("chunk-%04d", chunkSeq)
			chunkSeq++
			fmt.Fprintf(&b, "- name: %s\n  repo: upstream:%s\n  ref: %s\n  unpetrify-ref: master\n", chunk, chunk, fakeCommit(chunk))
			if i == 0 {
				b.WriteString("  build-mode: bootstrap\n")
			}
			if rng.IntN(10) < 4 {
				morph := fmt.Sprintf("strata/%s/%s.morph", name, chunk)
				fmt.Fprintf(&b, "  morph: %s\n", morph)
				fsys[morph] = &fstest.MapFile{Data: []byte(chunkMorph(rng, chunk))}
			} else {
				fmt.Fprintf(&b, "  build-system: %s\n", buildSystems[rng.IntN(len(buildSystems))])
			}
			if j > 0 {
				deps := map[int]bool{}
				for k := rng.IntN(3); k > 0; k-- {
					deps[rng.IntN(j)] = true
				}
				if len(deps) > 0 {
					b.WriteString("  build-depends:\n")
					for d := range j {
						if deps[d] {
							fmt.Fprintf(&b, "  - %s\n", chunkNames[d])
						}
					}
				}
			}
			chunkNames = append(chunkNames, chunk)
		}
		fsys["strata/"+name+".morph"] = &fstest.MapFile{Data: []byte(b.String())}
	}
	t := &Tree{FS: fsys, FullSystem: "systems/full-system.morph"}
	fsys[t.FullSystem] = &fstest.MapFile{Data: []byte(systemMorph("full-system", names))}
	if cfg.SubsetChunks > 0 {
		n, total := 0, 0
		for n < len(names) && total < cfg.SubsetChunks {
			total += counts[n]
			n++
		}
		t.SubsetSystem = "systems/subset-system.morph"
		t.SubsetChunkCount = total
		fsys[t.SubsetSystem] = &fstest.MapFile{Data: []byte(systemMorph("subset-system", names[:n]))}
	}
	return t
}

// spread divides total chunks over n strata, each getting at least one and
// the sizes varying the way real strata do.
func spread(rng *rand.Rand, total, n int) []int {
	counts := make([]int, n)
	for i := range counts {
		counts[i] = 1
	}
	for left := total - n; left > 0; left-- {
		counts[rng.IntN(n)]++
	}
	return counts
}

func chunkMorph(rng *rand.Rand, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nkind: chunk\ndescription: Generated chunk %s.\n", name, name)
	fmt.Fprintf(&b, "build-system: %s\n", buildSystems[rng.IntN(len(buildSystems))])
	switch rng.IntN(3) {
	case 0:
		b.WriteString("configure-commands:\n- ./configure --prefix=\"$PREFIX\" --disable-static\n")
	case 1:
		b.WriteString("pre-configure-commands:\n- sed -i s/-Werror// Makefile.in\npost-install-commands:\n- rm -f \"$DESTDIR$PREFIX\"/lib/*.la\n")
	}
	if rng.IntN(4) == 0 {
		fmt.Fprintf(&b, "max-jobs: %d\n", 1+rng.IntN(4))
	}
	if rng.IntN(5) == 0 {
		fmt.Fprintf(&b, "products:\n- artifact: %s-tools\n  include:\n  - usr/libexec/%s/.*\n", name, name)
	}
	return b.String()
}

func systemMorph(name string, strata []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nkind: system\ndescription: Generated system.\narch: x86_64\nstrata:\n", name)
	for _, s := range strata {
		fmt.Fprintf(&b, "- name: %s\n  morph: strata/%s.morph\n", s, s)
	}
	return b.String()
}

// fakeCommit makes a stable, commit-shaped ref for a chunk.
func fakeCommit(chunk string) string {
	sum := sha1.Sum([]byte(chunk))
	return hex.EncodeToString(sum[:])
}

// WriteDir writes fsys's files under dir, for tests that run commands in a
// real definitions checkout.
func WriteDir(dir string, fsys fstest.MapFS) error {
	for name, f := range fsys {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
