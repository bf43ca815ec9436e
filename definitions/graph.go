package definitions

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"distbuild/digest"
	"distbuild/splitrule"
)

// Kind is what a step builds.
type Kind int

// The kinds of step, in the order a system is put together.
const (
	KindChunk Kind = iota + 1
	KindStratum
	KindSystem
)

func (k Kind) String() string {
	switch k {
	case KindChunk:
		return "chunk"
	case KindStratum:
		return "stratum"
	case KindSystem:
		return "system"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Graph is a resolved system or cluster: every step needed to build it, in
// an order in which each step comes after all of its dependencies.
type Graph struct {
	// Name is the name of the system or cluster that was resolved.
	Name string
	// Cluster is true when a cluster morph was resolved.
	Cluster bool
	// Arch is the architecture every step is built for when the systems
	// share one, and empty when a cluster's systems have several: code
	// that needs an architecture must then take each step's.
	Arch string
	// Archs lists the systems' architectures in the order the cluster
	// first names them (for a system, its one architecture). A chunk or
	// stratum that systems of two architectures need is two steps, one
	// built for each.
	Archs []string
	// Systems are the final steps: the one system, or every system a
	// cluster lists (subsystems included), each once, in cluster order.
	Systems []*Step
	// Steps holds every step in a valid build order.
	Steps []*Step
	// Warnings are what morph tolerated but is likely a mistake, such as
	// a system-integration entry for an artifact the chunk never makes.
	// They never stop a build; `initiator lint` reports them as errors.
	Warnings []*Error

	byName map[string]*Step
}

// Step is one unit of work in a build: a chunk to compile, a stratum to
// record or a system to assemble. Its cache key names its output.
type Step struct {
	// Name is unique within the graph: it names the step's log file, its
	// artifacts' labels and what --partial selects. It is DefinedName
	// unless that clashes; see nameSteps for the rule.
	Name string
	// DefinedName is the chunk's, stratum's or system's name as the
	// definitions write it; cache keys use it, so qualifying a name never
	// changes what is built.
	DefinedName string
	Kind        Kind
	// Arch is the architecture the step is built for: it is in the cache
	// key, and only workers of this architecture can run the step.
	Arch string
	// CacheKey names the step's result in the artifact cache.
	CacheKey digest.CacheKey
	// Deps are the steps this one directly needs: for a chunk, the chunks
	// it names in build-depends and the strata its stratum build-depends
	// on; for a stratum, its chunks; for a system, its strata.
	Deps []*Step
	// File and Line say where the step is defined, for messages.
	File string
	Line int

	// Exactly one of these is set, matching Kind.
	Chunk   *ChunkBuild
	Stratum *StratumBuild
	System  *SystemBuild

	index int // position in Graph.Steps
}

// Index is the step's position in Graph.Steps, handy as a dense array index.
func (s *Step) Index() int { return s.index }

// ChunkBuild is everything needed to build a chunk, after defaults and
// overrides have been applied.
type ChunkBuild struct {
	// Stratum is the name of the stratum the chunk belongs to.
	Stratum      string
	Repo         string
	Ref          string
	UnpetrifyRef string
	// Commit is the exact source commit (Ref itself when it was one).
	Commit      string
	BuildSystem string
	BuildMode   BuildMode
	Prefix      string
	// Phases are the effective commands, in run order.
	Phases     []Phase
	MaxJobs    int
	Devices    []Device
	Submodules []Submodule
	// SplitRules are the chunk's products rules followed by the defaults.
	SplitRules []SplitRule
	// Artifacts are the names of the split artifacts the rules can produce.
	Artifacts []string
	// SystemIntegration maps a split artifact to named command lists run
	// when a system containing that artifact is assembled.
	SystemIntegration map[string]map[string][]string
}

// Phase is one build phase with its effective commands.
type Phase struct {
	Name     string   `json:"name"`
	Commands []string `json:"commands"`
}

// StratumBuild says which chunk artifacts make up each of a stratum's split
// artifacts.
type StratumBuild struct {
	Chunks    []*Step
	Artifacts []StratumArtifact
}

// StratumArtifact is one split artifact of a stratum.
type StratumArtifact struct {
	Name    string
	Members []ChunkArtifact
}

// ChunkArtifact names one split artifact of a chunk step.
type ChunkArtifact struct {
	Chunk    *Step
	Artifact string
}

// SystemBuild says which stratum artifacts a system contains.
type SystemBuild struct {
	Strata []SystemStratumBuild
}

// SystemStratumBuild is one stratum of a system and the split artifacts of
// it that the system takes.
type SystemStratumBuild struct {
	Stratum   *Step
	Artifacts []string
}

// Staging returns the chunk steps whose artifacts must be staged to build
// step: everything it depends on, transitively, in build order.
func (g *Graph) Staging(step *Step) []*Step {
	seen := make([]bool, len(g.Steps))
	var walk func(s *Step)
	walk = func(s *Step) {
		for _, d := range s.Deps {
			if !seen[d.index] {
				seen[d.index] = true
				walk(d)
			}
		}
	}
	walk(step)
	var out []*Step
	for i, s := range g.Steps {
		if seen[i] && s.Kind == KindChunk {
			out = append(out, s)
		}
	}
	return out
}

// RefResolver turns a branch or tag of a chunk's repository into a commit.
// Keys are computed from commits, so every non-commit ref must be resolved;
// each (repo, ref) pair is asked for once per resolution.
type RefResolver interface {
	ResolveRef(ctx context.Context, repo, ref string) (commit string, err error)
}

// CommitsOnly is a RefResolver for offline use: it accepts only refs that are
// already commit SHAs, so a graph can be computed without any network.
type CommitsOnly struct{}

// ResolveRef refuses every ref, because CommitsOnly is only asked about refs
// that are not commits.
func (CommitsOnly) ResolveRef(_ context.Context, _, ref string) (string, error) {
	return "", fmt.Errorf("ref %q is not a commit SHA and refs cannot be resolved offline; pin it to a 40-character commit", ref)
}

// IsCommit reports whether ref is a full commit SHA (40 lower-case hex).
func IsCommit(ref string) bool {
	if len(ref) != 40 {
		return false
	}
	for _, c := range ref {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Definitions is an opened definitions tree: its VERSION checked and DEFAULTS
// parsed, ready to resolve systems from.
type Definitions struct {
	fsys     fs.FS
	Version  int
	Defaults *Defaults
}

// Open reads VERSION and DEFAULTS from the root of fsys.
func Open(fsys fs.FS) (*Definitions, error) {
	v, err := readVersion(fsys)
	if err != nil {
		return nil, err
	}
	d, err := readDefaults(fsys)
	if err != nil {
		return nil, err
	}
	return &Definitions{fsys: fsys, Version: v, Defaults: d}, nil
}

// Resolve loads the system or cluster morph at morphPath and everything it
// refers to, and returns its build graph with every cache key computed. A
// cluster resolves to one graph holding every system it lists, subsystems
// included, with the steps they share once.
func (d *Definitions) Resolve(ctx context.Context, morphPath string, refs RefResolver) (*Graph, error) {
	r := &resolver{
		ctx:     ctx,
		defs:    d,
		refs:    refs,
		strata:  map[[2]string]*stratumNode{},
		systems: map[string]*Step{},
		commits: map[[2]string]string{},
		chunks:  map[string]*Chunk{},
		byKey:   map[digest.CacheKey]*Step{},
		warned:  map[Error]bool{},
		graph:   &Graph{},
	}
	m, kind, err := readMorph(d.fsys, morphPath, "", 0, "system", "cluster")
	if err != nil {
		return nil, err
	}
	if kind == "cluster" {
		err = r.resolveCluster(m)
	} else {
		var sys *System
		if sys, err = systemFromMapping(m); err == nil {
			r.graph.Name = sys.Name
			_, err = r.resolveSystem(sys)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(r.graph.Archs) == 1 {
		r.graph.Arch = r.graph.Archs[0]
	}
	if err := r.nameSteps(); err != nil {
		return nil, err
	}
	return r.graph, nil
}

type stratumNode struct {
	stratum *Stratum
	step    *Step
	done    bool
	rules   []SplitRule
}

type resolver struct {
	ctx      context.Context
	defs     *Definitions
	refs     RefResolver
	strata   map[[2]string]*stratumNode // by arch and file
	systems  map[string]*Step           // by file
	arch     string                     // the architecture of the system being resolved
	commits  map[[2]string]string
	chunks   map[string]*Chunk         // chunk morphs by file
	byKey    map[digest.CacheKey]*Step // every step, by cache key
	warned   map[Error]bool
	graph    *Graph
	visiting []string // stratum files on the DFS stack, for cycle messages
}

// warn records something morph tolerated, once however often it is met.
func (r *resolver) warn(file string, line int, format string, args ...any) {
	w := errorf(file, line, format, args...)
	if !r.warned[*w] {
		r.warned[*w] = true
		r.graph.Warnings = append(r.graph.Warnings, w)
	}
}

// resolveCluster resolves every system a cluster lists into the graph,
// each for its own architecture: real release clusters list systems of
// several together.
func (r *resolver) resolveCluster(m *mapping) error {
	cl, err := clusterFromMapping(m)
	if err != nil {
		return err
	}
	r.graph.Name, r.graph.Cluster = cl.Name, true
	for _, cs := range cl.Systems {
		sm, _, err := readMorph(r.defs.fsys, cs.Morph, cl.File, cs.Line, "system")
		if err != nil {
			return err
		}
		sys, err := systemFromMapping(sm)
		if err != nil {
			return err
		}
		if _, err := r.resolveSystem(sys); err != nil {
			return err
		}
	}
	return nil
}

// resolveSystem adds a system's strata and its own step to the graph, once
// per system morph, all built for the system's architecture.
func (r *resolver) resolveSystem(sys *System) (*Step, error) {
	if step, ok := r.systems[sys.File]; ok {
		return step, nil
	}
	r.arch = sys.Arch
	if !slices.Contains(r.graph.Archs, sys.Arch) {
		r.graph.Archs = append(r.graph.Archs, sys.Arch)
	}
	build := &SystemBuild{}
	var deps []*Step
	for _, ss := range sys.Strata {
		node, err := r.visitStratum(ss.Morph, sys.File, ss.Line)
		if err != nil {
			return nil, err
		}
		st := node.stratum
		if ss.Name != "" && ss.Name != st.Name {
			return nil, errorf(sys.File, ss.Line, "system %q: strata entry is named %q but %s is stratum %q", sys.Name, ss.Name, ss.Morph, st.Name)
		}
		entry := SystemStratumBuild{Stratum: node.step, Artifacts: make([]string, 0, len(node.step.Stratum.Artifacts))}
		if ss.Artifacts == nil {
			for _, a := range node.step.Stratum.Artifacts {
				entry.Artifacts = append(entry.Artifacts, a.Name)
			}
		} else {
			for i, a := range ss.Artifacts {
				full := qualify(st.Name, a)
				if !slices.ContainsFunc(node.step.Stratum.Artifacts, func(sa StratumArtifact) bool { return sa.Name == full }) {
					r.warn(sys.File, ss.artifactLines[i], "system %q: stratum %q has no artifact %q, so this filter entry selects nothing", sys.Name, st.Name, full)
					continue
				}
				entry.Artifacts = append(entry.Artifacts, full)
			}
		}
		build.Strata = append(build.Strata, entry)
		deps = append(deps, node.step)
	}
	step := &Step{DefinedName: sys.Name, Kind: KindSystem, Arch: r.arch, Deps: deps, File: sys.File, Line: 1, System: build}
	step.CacheKey = systemKey(step)
	step = r.add(step)
	r.systems[sys.File] = step
	if !slices.Contains(r.graph.Systems, step) {
		r.graph.Systems = append(r.graph.Systems, step)
	}
	return step, nil
}

// add puts s into the graph and returns it, or returns the step already
// there with the same cache key: two chunks of one name built from the same
// source, commands and dependencies (in two strata) are one piece of work.
func (r *resolver) add(s *Step) *Step {
	if prev, ok := r.byKey[s.CacheKey]; ok {
		return prev
	}
	s.index = len(r.graph.Steps)
	r.graph.Steps = append(r.graph.Steps, s)
	r.byKey[s.CacheKey] = s
	return s
}

// visitStratum loads a stratum and, depth first, the strata it depends on,
// then adds its chunk steps and its own step, for the architecture being
// resolved. The DFS stack detects cycles.
func (r *resolver) visitStratum(file, from string, line int) (*stratumNode, error) {
	key := [2]string{r.arch, file}
	if n, ok := r.strata[key]; ok {
		if !n.done {
			i := slices.Index(r.visiting, file)
			cycle := append(slices.Clone(r.visiting[i:]), file)
			return nil, errorf(from, line, "build-depends cycle between strata: %s", strings.Join(cycle, " -> "))
		}
		return n, nil
	}
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	m, _, err := readMorph(r.defs.fsys, file, from, line, "stratum")
	if err != nil {
		return nil, err
	}
	st, err := stratumFromMapping(m)
	if err != nil {
		return nil, err
	}
	node := &stratumNode{stratum: st}
	r.strata[key] = node
	r.visiting = append(r.visiting, file)
	var depSteps []*Step
	for _, d := range st.BuildDepends {
		dn, err := r.visitStratum(d.Morph, file, d.Line)
		if err != nil {
			return nil, err
		}
		depSteps = append(depSteps, dn.step)
	}
	r.visiting = r.visiting[:len(r.visiting)-1]
	node.rules = qualifyRules(st.Name, append(slices.Clone(st.Products), r.defs.Defaults.StratumSplitRules...))
	chunkSteps, err := r.addChunks(st, depSteps, node.rules)
	if err != nil {
		return nil, err
	}
	step := &Step{DefinedName: st.Name, Kind: KindStratum, Arch: r.arch, Deps: chunkSteps, File: file, Line: 1}
	if step.Stratum, err = r.splitStratum(st, chunkSteps, node.rules); err != nil {
		return nil, err
	}
	step.CacheKey = stratumKey(step)
	node.step = r.add(step)
	node.done = true
	return node, nil
}

// addChunks adds the stratum's chunk steps in an order that respects their
// build-depends, reporting a cycle among them with its path.
func (r *resolver) addChunks(st *Stratum, stratumDeps []*Step, stratumRules []SplitRule) ([]*Step, error) {
	specs := make(map[string]*ChunkSpec, len(st.Chunks))
	for i := range st.Chunks {
		specs[st.Chunks[i].Name] = &st.Chunks[i]
	}
	steps := make(map[string]*Step, len(st.Chunks))
	const (
		unvisited = iota
		visiting
		visited
	)
	state := make(map[string]int, len(st.Chunks))
	var stack []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case visited:
			return nil
		case visiting:
			i := slices.Index(stack, name)
			cycle := append(slices.Clone(stack[i:]), name)
			return errorf(st.File, specs[name].buildDependsLine, "stratum %q: build-depends cycle between chunks: %s", st.Name, strings.Join(cycle, " -> "))
		}
		state[name] = visiting
		stack = append(stack, name)
		spec := specs[name]
		for _, d := range spec.BuildDepends {
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = visited
		deps := make([]*Step, 0, len(spec.BuildDepends)+len(stratumDeps))
		for _, d := range spec.BuildDepends {
			deps = append(deps, steps[d])
		}
		deps = append(deps, stratumDeps...)
		step, err := r.chunkStep(st, spec, deps, stratumRules)
		if err != nil {
			return err
		}
		steps[name] = r.add(step)
		return nil
	}
	ordered := make([]*Step, 0, len(st.Chunks))
	for _, c := range st.Chunks {
		if err := visit(c.Name); err != nil {
			return nil, err
		}
		ordered = append(ordered, steps[c.Name])
	}
	return ordered, nil
}

func (r *resolver) chunkStep(st *Stratum, spec *ChunkSpec, deps []*Step, stratumRules []SplitRule) (*Step, error) {
	what := fmt.Sprintf("stratum %q: chunk %q", st.Name, spec.Name)
	chunk := &Chunk{Name: spec.Name, BuildSystem: spec.BuildSystem}
	bsFile, bsLine := st.File, spec.buildSystemLine
	if spec.Morph != "" {
		var err error
		if chunk, err = r.chunkMorph(spec.Morph, st.File, spec.Line); err != nil {
			return nil, err
		}
		bsFile, bsLine = chunk.File, chunk.buildSystemLine
	}
	bsName := chunk.BuildSystem
	if bsName == "" {
		bsName = "manual"
	}
	bs, ok := r.defs.Defaults.BuildSystems[bsName]
	if !ok {
		return nil, errorf(bsFile, bsLine, "%s: unknown build system %q (known: %s)", what, bsName, strings.Join(slices.Sorted(maps.Keys(r.defs.Defaults.BuildSystems)), ", "))
	}
	b := &ChunkBuild{
		Stratum:      st.Name,
		Repo:         spec.Repo,
		Ref:          spec.Ref,
		UnpetrifyRef: spec.UnpetrifyRef,
		BuildSystem:  bsName,
		BuildMode:    spec.BuildMode,
		Prefix:       spec.Prefix,
		MaxJobs:      chunk.MaxJobs,
		Devices:      chunk.Devices,
		Submodules:   spec.Submodules,
	}
	if spec.MaxJobs > 0 {
		b.MaxJobs = spec.MaxJobs
	}
	for _, p := range Phases {
		cmds, own := chunk.Commands[p+"-commands"]
		if !own {
			cmds = bs.Commands[p]
		}
		all := slices.Concat(chunk.Commands["pre-"+p+"-commands"], cmds, chunk.Commands["post-"+p+"-commands"])
		b.Phases = append(b.Phases, Phase{Name: p, Commands: all})
	}
	b.SplitRules = qualifyRules(spec.Name, append(slices.Clone(chunk.Products), r.defs.Defaults.ChunkSplitRules...))
	for _, rule := range b.SplitRules {
		if !slices.Contains(b.Artifacts, rule.Artifact) {
			b.Artifacts = append(b.Artifacts, rule.Artifact)
		}
	}
	if chunk.SystemIntegration != nil {
		b.SystemIntegration = make(map[string]map[string][]string, len(chunk.SystemIntegration))
		for art, steps := range chunk.SystemIntegration {
			full := qualify(spec.Name, art)
			if !slices.Contains(b.Artifacts, full) {
				r.warn(chunk.File, chunk.systemIntegrationLines[art], "%s: system-integration names %q, which is not one of the chunk's split artifacts (%s), so its commands never run", what, full, strings.Join(b.Artifacts, ", "))
				continue
			}
			b.SystemIntegration[full] = steps
		}
	}
	for from, to := range spec.Artifacts {
		if full := qualify(spec.Name, from); !slices.Contains(b.Artifacts, full) {
			return nil, errorf(st.File, spec.Line, "%s: artifacts maps %q, which is not one of the chunk's split artifacts (%s)", what, full, strings.Join(b.Artifacts, ", "))
		}
		if full := qualify(st.Name, to); !slices.ContainsFunc(stratumRules, func(r SplitRule) bool { return r.Artifact == full }) {
			return nil, errorf(st.File, spec.Line, "%s: artifacts maps %q to %q, which is not one of the stratum's split artifacts", what, from, full)
		}
	}
	commit, err := r.commit(spec.Repo, spec.Ref)
	if err != nil {
		return nil, errorf(st.File, spec.Line, "%s: %v", what, err)
	}
	b.Commit = commit
	step := &Step{DefinedName: spec.Name, Kind: KindChunk, Arch: r.arch, Deps: deps, File: st.File, Line: spec.Line, Chunk: b}
	step.CacheKey = chunkKey(step)
	return step, nil
}

func (r *resolver) chunkMorph(file, from string, line int) (*Chunk, error) {
	if c, ok := r.chunks[file]; ok {
		return c, nil
	}
	m, _, err := readMorph(r.defs.fsys, file, from, line, "chunk")
	if err != nil {
		return nil, err
	}
	c, err := chunkFromMapping(m)
	if err != nil {
		return nil, err
	}
	r.chunks[file] = c
	return c, nil
}

// commit resolves ref to a commit, asking the RefResolver at most once per
// (repo, ref) so every chunk built from the same branch sees the same commit.
func (r *resolver) commit(repo, ref string) (string, error) {
	if IsCommit(ref) {
		return ref, nil
	}
	k := [2]string{repo, ref}
	if c, ok := r.commits[k]; ok {
		return c, nil
	}
	c, err := r.refs.ResolveRef(r.ctx, repo, ref)
	if err != nil {
		return "", err
	}
	if !IsCommit(c) {
		return "", fmt.Errorf("ref %q of %s resolved to %q, which is not a commit SHA", ref, repo, c)
	}
	r.commits[k] = c
	return c, nil
}

// splitStratum works out which chunk artifacts go into each of the stratum's
// split artifacts: a chunk spec's artifacts map first, then the stratum's
// rules. Chunk artifacts no rule matches are left out of the stratum.
func (r *resolver) splitStratum(st *Stratum, chunks []*Step, rules []SplitRule) (*StratumBuild, error) {
	b := &StratumBuild{Chunks: chunks}
	index := map[string]int{}
	for _, rule := range rules {
		if _, ok := index[rule.Artifact]; !ok {
			index[rule.Artifact] = len(b.Artifacts)
			b.Artifacts = append(b.Artifacts, StratumArtifact{Name: rule.Artifact})
		}
	}
	for i, c := range chunks {
		spec := &st.Chunks[i]
		overrides := make(map[string]string, len(spec.Artifacts))
		for from, to := range spec.Artifacts {
			overrides[qualify(spec.Name, from)] = qualify(st.Name, to)
		}
		for _, art := range c.Chunk.Artifacts {
			target, ok := overrides[art]
			if !ok {
				if target, ok = splitrule.Match(rules, art); !ok {
					continue
				}
			}
			sa := &b.Artifacts[index[target]]
			sa.Members = append(sa.Members, ChunkArtifact{Chunk: c, Artifact: art})
		}
	}
	return b, nil
}
