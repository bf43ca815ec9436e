package definitions

// Step names label log files (build-step-<name>.log), artifacts, what
// --partial selects and every line the initiator prints, so they must be
// unique within a build. The definitions' own names are not: morph
// accepted a chunk named like its stratum (ruby in ruby), a system named
// like one of its strata, and one chunk name in several strata of a
// system (groff in foundation and cross-bootstrap). The rule below keeps
// the names people know wherever it can, and depends only on the graph,
// so the same definitions always give the same names:
//
//  1. Chunks are named first, in build order. A chunk keeps its name
//     unless an earlier chunk has it; then it is <chunk>@<stratum>
//     (groff@cross-bootstrap). Stratum names are unique among the
//     steps of one architecture, so these are too.
//  2. A stratum keeps its name unless a chunk has it; then it is
//     <stratum>.stratum (ruby.stratum).
//  3. A system keeps its name unless a chunk or stratum has it; then it
//     is <system>.system.
//  4. A build for several architectures (a cluster whose systems have
//     different ones) holds a chunk or stratum once per architecture
//     that needs it. Each architecture's steps are named by rules 1-3
//     among themselves, so each gets the name it would have in a cluster
//     of only its architecture's systems; architectures are taken in the
//     order the cluster first names them, and a name an earlier
//     architecture already has gets @<arch> appended: zlib@armv7lhf,
//     groff@docs@armv7lhf, ruby.stratum@armv7lhf. A step only one
//     architecture has keeps its name. A build for one architecture
//     therefore has exactly the names it always had.
//
// Qualified names use only '@' and '.' (architecture names are letters,
// digits and '_'), so they stay safe file names. Two strata (or two
// systems) of one name and architecture in a build stay an error, as
// does a qualified name that a definition spells out literally: those
// would need a rule no reader could guess.

import "fmt"

// kindSuffix is what rules 2 and 3 append.
var kindSuffix = map[Kind]string{KindStratum: ".stratum", KindSystem: ".system"}

// nameSteps gives every step its unique name and indexes them.
func (r *resolver) nameSteps() error {
	g := r.graph
	g.byName = make(map[string]*Step, len(g.Steps))
	multi := len(g.Archs) > 1
	for _, arch := range g.Archs {
		// Rules 1-3 name each architecture's steps; with one, those are
		// the graph's names.
		inArch := g.byName
		if multi {
			inArch = map[string]*Step{}
		}
		for _, kind := range []Kind{KindChunk, KindStratum, KindSystem} {
			for _, s := range g.Steps {
				if s.Kind != kind || s.Arch != arch {
					continue
				}
				name := s.DefinedName
				if prev, taken := inArch[name]; taken {
					if kind == KindChunk {
						name = fmt.Sprintf("%s@%s", name, s.Chunk.Stratum)
					} else if prev.Kind != kind {
						name += kindSuffix[kind]
					}
				}
				if prev, dup := inArch[name]; dup {
					return errorf(s.File, s.Line, "%s name %q is also the name of the %s defined in %s:%d; give one of them another name",
						s.Kind, s.DefinedName, prev.Kind, prev.File, prev.Line)
				}
				inArch[name] = s
				if multi {
					// Rule 4.
					if _, taken := g.byName[name]; taken {
						name += "@" + arch
					}
					if prev, dup := g.byName[name]; dup {
						return errorf(s.File, s.Line, "%s %q built for %s would be named %q, which is the name of the %s defined in %s:%d; give one of them another name",
							s.Kind, s.DefinedName, arch, name, prev.Kind, prev.File, prev.Line)
					}
					g.byName[name] = s
				}
				s.Name = name
			}
		}
	}
	return nil
}

// Step returns the step called name, or nil.
func (g *Graph) Step(name string) *Step { return g.byName[name] }
