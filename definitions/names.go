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
//     (groff@cross-bootstrap). Stratum names are unique in a build, so
//     these are too.
//  2. A stratum keeps its name unless a chunk has it; then it is
//     <stratum>.stratum (ruby.stratum).
//  3. A system keeps its name unless a chunk or stratum has it; then it
//     is <system>.system.
//
// Qualified names use only '@' and '.', so they stay safe file names.
// Two strata (or two systems) of one name in a build stay an error, as
// does a qualified name that a definition spells out literally: those
// would need a rule no reader could guess.

import "fmt"

// kindSuffix is what rules 2 and 3 append.
var kindSuffix = map[Kind]string{KindStratum: ".stratum", KindSystem: ".system"}

// nameSteps gives every step its unique name and indexes them.
func (r *resolver) nameSteps() error {
	g := r.graph
	g.byName = make(map[string]*Step, len(g.Steps))
	claim := func(s *Step, name string) error {
		if prev, dup := g.byName[name]; dup {
			return errorf(s.File, s.Line, "%s name %q is also the name of the %s defined in %s:%d; give one of them another name",
				s.Kind, s.DefinedName, prev.Kind, prev.File, prev.Line)
		}
		s.Name = name
		g.byName[name] = s
		return nil
	}
	for _, kind := range []Kind{KindChunk, KindStratum, KindSystem} {
		for _, s := range g.Steps {
			if s.Kind != kind {
				continue
			}
			name := s.DefinedName
			if _, taken := g.byName[name]; taken {
				if kind == KindChunk {
					name = fmt.Sprintf("%s@%s", name, s.Chunk.Stratum)
				} else if prev := g.byName[name]; prev.Kind != kind {
					name += kindSuffix[kind]
				}
			}
			if err := claim(s, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// Step returns the step called name, or nil.
func (g *Graph) Step(name string) *Step { return g.byName[name] }
