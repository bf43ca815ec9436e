package definitions

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// System is a parsed system morph: which strata make up a root file system
// for one architecture.
type System struct {
	File        string
	Name        string
	Description string
	Arch        string
	Strata      []SystemStratum
}

// SystemStratum is one entry of a system's strata list.
type SystemStratum struct {
	// Name is the stratum's name as the system writes it (may be empty).
	Name string
	// Morph is the stratum morph's path in the definitions tree.
	Morph string
	// Artifacts filters which of the stratum's split artifacts go into the
	// system; nil means all of them. Names are as written ("-runtime" or
	// "core-runtime").
	Artifacts []string
	Line      int
	// artifactLines locates each of Artifacts, for warnings.
	artifactLines []int
}

// Stratum is a parsed stratum morph: a group of chunks built on top of the
// strata it build-depends on.
type Stratum struct {
	File         string
	Name         string
	Description  string
	BuildDepends []StratumDependency
	Products     []SplitRule
	Chunks       []ChunkSpec
}

// StratumDependency is one entry of a stratum's build-depends.
type StratumDependency struct {
	Morph string
	Line  int
}

// ChunkSpec is a chunk as a stratum lists it: where its source is and how it
// relates to the other chunks of the stratum.
type ChunkSpec struct {
	Name         string
	Repo         string
	Ref          string
	UnpetrifyRef string
	// Morph is the chunk morph's path; empty when BuildSystem is used instead.
	Morph        string
	BuildSystem  string
	BuildDepends []string
	BuildMode    BuildMode
	Prefix       string
	Submodules   []Submodule
	// Artifacts maps chunk split artifact names to stratum split artifact
	// names, overriding the stratum's split rules.
	Artifacts map[string]string
	// MaxJobs overrides the chunk morph's max-jobs; 0 means not set.
	MaxJobs int
	Line    int
	// buildDependsLine and buildSystemLine locate those fields for errors.
	buildDependsLine int
	buildSystemLine  int
}

// Submodule is a git submodule the chunk's source needs checked out.
type Submodule struct {
	Path string `json:"path"`
	URL  string `json:"url"`
}

// Chunk is a parsed chunk morph: the commands that build one source tree.
type Chunk struct {
	File        string
	Name        string
	Description string
	BuildSystem string
	// Commands holds the command lists the morph sets, keyed by field name
	// (e.g. "pre-configure-commands"). A key present with an empty list
	// overrides the build system, so presence matters.
	Commands          map[string][]string
	MaxJobs           int
	Devices           []Device
	Products          []SplitRule
	SystemIntegration map[string]map[string][]string

	buildSystemLine int
	// systemIntegrationLines locates each SystemIntegration key.
	systemIntegrationLines map[string]int
}

// Device is a device node a chunk's artifact contains.
type Device struct {
	Type        string `json:"type"`
	Filename    string `json:"filename"`
	Permissions uint32 `json:"permissions"`
	UID         uint32 `json:"uid"`
	GID         uint32 `json:"gid"`
	Major       uint32 `json:"major"`
	Minor       uint32 `json:"minor"`
}

// Phases are the build phases in the order they run.
var Phases = []string{"configure", "build", "test", "install", "strip"}

var (
	systemFields = fieldSet("name", "kind", "description", "arch", "strata", "configuration-extensions")
	// obsoleteSystemFields were dropped from the format; accepting them
	// silently would hide that they no longer do anything.
	obsoleteSystemFields = fieldSet("system-kind", "disk-size")
	systemStratumFields  = fieldSet("name", "morph", "artifacts")
	stratumFields        = fieldSet("name", "kind", "description", "build-depends", "products", "chunks")
	stratumDepFields     = fieldSet("morph")
	chunkSpecFields      = fieldSet("name", "repo", "ref", "unpetrify-ref", "morph", "build-system",
		"build-depends", "build-mode", "prefix", "submodules", "artifacts", "max-jobs")
	submoduleFields = fieldSet("url")
	chunkFields     = chunkFieldSet()
	deviceFields    = fieldSet("type", "filename", "permissions", "uid", "gid", "major", "minor")
	buildModes      = map[BuildMode]bool{BuildStaging: true, BuildBootstrap: true, BuildTest: true}
)

// BuildMode says which tools a chunk builds with, as its definition's
// build-mode writes it. It is a type of its own so that a mode is never
// confused with any other string on its way to the worker's sandbox.
type BuildMode string

// The build modes of the format.
const (
	// BuildStaging builds in a sandbox whose root is the staged
	// dependencies: the default, and what a reproducible system needs.
	BuildStaging BuildMode = "staging"
	// BuildBootstrap builds with the host's tools: the very first chunks.
	BuildBootstrap BuildMode = "bootstrap"
	// BuildTest is like bootstrap; test definitions use it.
	BuildTest BuildMode = "test"
)

func fieldSet(names ...string) map[string]bool {
	s := make(map[string]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// commandFields lists every "[pre-|post-]<phase>-commands" field name.
func commandFields() []string {
	var out []string
	for _, p := range Phases {
		out = append(out, "pre-"+p+"-commands", p+"-commands", "post-"+p+"-commands")
	}
	return out
}

func chunkFieldSet() map[string]bool {
	s := fieldSet("name", "kind", "description", "build-system", "max-jobs", "devices", "products", "system-integration")
	for _, f := range commandFields() {
		s[f] = true
	}
	return s
}

// readMorph reads file from fsys and checks that its kind is one of
// wantKinds, which it returns. Callers name the file that referred to it
// (from, line) so a missing file is reported where the reference is
// written; from is empty for the morph a user named.
func readMorph(fsys fs.FS, file, from string, line int, wantKinds ...string) (*mapping, string, error) {
	if !fs.ValidPath(file) || path.Ext(file) != ".morph" {
		return nil, "", errorf(from, line, "%q is not a valid morph path (want a relative path such as strata/core.morph)", file)
	}
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		if from == "" {
			return nil, "", errorf(file, 0, "cannot read morph: %v", unwrapPathError(err))
		}
		return nil, "", errorf(from, line, "%s morph %q: %v", strings.Join(wantKinds, " or "), file, unwrapPathError(err))
	}
	return parseMorph(file, data, wantKinds...)
}

// knownKinds are the kinds of morph the format defines.
var knownKinds = []string{"chunk", "stratum", "system", "cluster"}

// parseMorph parses data as a morph and checks that its kind is one of
// wantKinds, which it returns.
func parseMorph(file string, data []byte, wantKinds ...string) (*mapping, string, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, "", err
	}
	m, err := readMapping(file, root, "morph")
	if err != nil {
		return nil, "", err
	}
	want := strings.Join(wantKinds, " or ")
	kind, ok, err := m.str("kind", "morph")
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "", errorf(file, m.line, "morph has no kind (want %s)", want)
	}
	if !slices.Contains(knownKinds, kind) {
		return nil, "", errorf(file, m.lineOf("kind"), "unknown kind %q (want chunk, stratum, system or cluster)", kind)
	}
	if !slices.Contains(wantKinds, kind) {
		return nil, "", errorf(file, m.lineOf("kind"), "kind is %s, but it is used as a %s", kind, want)
	}
	return m, kind, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		if pe.Err == fs.ErrNotExist {
			return fmt.Errorf("file not found")
		}
		return pe.Err
	}
	return err
}

// ParseSystem parses a system morph's content; file names it in errors.
func ParseSystem(file string, data []byte) (*System, error) {
	m, _, err := parseMorph(file, data, "system")
	if err != nil {
		return nil, err
	}
	return systemFromMapping(m)
}

func systemFromMapping(m *mapping) (*System, error) {
	f := m.file
	for _, k := range m.keys {
		if obsoleteSystemFields[k] {
			return nil, errorf(f, m.lines[k], "system: field %q is obsolete and no longer supported; remove it", k)
		}
	}
	if err := m.checkKnown("system", systemFields); err != nil {
		return nil, err
	}
	s := &System{File: f}
	var err error
	if s.Name, err = m.requiredStr("name", "system"); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("system %q", s.Name)
	if s.Description, _, err = m.str("description", what); err != nil {
		return nil, err
	}
	arch, err := m.requiredStr("arch", what)
	if err != nil {
		return nil, err
	}
	var ok bool
	if s.Arch, ok = normalizeArch(arch); !ok {
		return nil, errorf(f, m.lineOf("arch"), "%s: unknown arch %q", what, arch)
	}
	items, _, err := m.list("strata", what)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errorf(f, m.lineOf("strata"), "%s: must list at least one stratum in strata", what)
	}
	seen := map[string]int{}
	for _, it := range items {
		sm, err := readMapping(f, it, what+": strata entry")
		if err != nil {
			return nil, err
		}
		if err := sm.checkKnown(what+": strata entry", systemStratumFields); err != nil {
			return nil, err
		}
		ss := SystemStratum{Line: sm.line}
		if ss.Name, _, err = sm.str("name", what+": strata entry"); err != nil {
			return nil, err
		}
		if ss.Morph, err = sm.requiredStr("morph", what+": strata entry"); err != nil {
			return nil, err
		}
		if ss.Artifacts, _, err = sm.strList("artifacts", what+": strata entry"); err != nil {
			return nil, err
		}
		arts, _, _ := sm.list("artifacts", what)
		for _, a := range arts {
			ss.artifactLines = append(ss.artifactLines, a.Line)
		}
		key := ss.Morph
		if prev, dup := seen[key]; dup {
			return nil, errorf(f, ss.Line, "%s: stratum %s is listed twice (also on line %d)", what, key, prev)
		}
		seen[key] = ss.Line
		s.Strata = append(s.Strata, ss)
	}
	return s, nil
}

// ParseStratum parses a stratum morph's content; file names it in errors.
func ParseStratum(file string, data []byte) (*Stratum, error) {
	m, _, err := parseMorph(file, data, "stratum")
	if err != nil {
		return nil, err
	}
	return stratumFromMapping(m)
}

func stratumFromMapping(m *mapping) (*Stratum, error) {
	f := m.file
	if err := m.checkKnown("stratum", stratumFields); err != nil {
		return nil, err
	}
	s := &Stratum{File: f}
	var err error
	if s.Name, err = m.requiredStr("name", "stratum"); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("stratum %q", s.Name)
	if s.Description, _, err = m.str("description", what); err != nil {
		return nil, err
	}
	deps, _, err := m.list("build-depends", what)
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		dm, err := readMapping(f, d, what+": build-depends entry")
		if err != nil {
			return nil, err
		}
		if err := dm.checkKnown(what+": build-depends entry", stratumDepFields); err != nil {
			return nil, err
		}
		morph, err := dm.requiredStr("morph", what+": build-depends entry")
		if err != nil {
			return nil, err
		}
		if morph == f {
			return nil, errorf(f, dm.line, "%s build-depends on itself", what)
		}
		s.BuildDepends = append(s.BuildDepends, StratumDependency{Morph: morph, Line: dm.line})
	}
	products, _, err := m.list("products", what)
	if err != nil {
		return nil, err
	}
	if s.Products, err = parseSplitRules(f, products, what+": products"); err != nil {
		return nil, err
	}
	chunks, _, err := m.list("chunks", what)
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, errorf(f, m.lineOf("chunks"), "%s: must list at least one chunk in chunks", what)
	}
	names := map[string]int{}
	hasBootstrap := false
	for _, c := range chunks {
		spec, err := parseChunkSpec(f, c, what)
		if err != nil {
			return nil, err
		}
		if prev, dup := names[spec.Name]; dup {
			return nil, errorf(f, spec.Line, "%s: duplicate chunk %q (also on line %d)", what, spec.Name, prev)
		}
		names[spec.Name] = spec.Line
		if spec.BuildMode != BuildStaging {
			hasBootstrap = true
		}
		s.Chunks = append(s.Chunks, spec)
	}
	for _, c := range s.Chunks {
		for _, d := range c.BuildDepends {
			if _, ok := names[d]; !ok {
				return nil, errorf(f, c.buildDependsLine, "%s: chunk %q build-depends on %q, which is not a chunk of this stratum", what, c.Name, d)
			}
			if d == c.Name {
				return nil, errorf(f, c.buildDependsLine, "%s: chunk %q build-depends on itself", what, c.Name)
			}
		}
	}
	if len(s.BuildDepends) == 0 && !hasBootstrap {
		return nil, errorf(f, m.line, "%s has no build-depends, so it must contain a chunk in bootstrap or test build-mode to supply the tools its chunks build with", what)
	}
	return s, nil
}

func parseChunkSpec(f string, n *yaml.Node, stratum string) (ChunkSpec, error) {
	m, err := readMapping(f, n, stratum+": chunk")
	if err != nil {
		return ChunkSpec{}, err
	}
	c := ChunkSpec{Line: m.line, BuildMode: BuildStaging, Prefix: "/usr"}
	if c.Name, err = m.requiredStr("name", stratum+": chunk"); err != nil {
		return c, err
	}
	what := fmt.Sprintf("%s: chunk %q", stratum, c.Name)
	if err := m.checkKnown(what, chunkSpecFields); err != nil {
		return c, err
	}
	if c.Repo, err = m.requiredStr("repo", what); err != nil {
		return c, err
	}
	if c.Ref, err = m.requiredStr("ref", what); err != nil {
		return c, err
	}
	if c.UnpetrifyRef, _, err = m.str("unpetrify-ref", what); err != nil {
		return c, err
	}
	if c.Morph, _, err = m.str("morph", what); err != nil {
		return c, err
	}
	if c.BuildSystem, _, err = m.str("build-system", what); err != nil {
		return c, err
	}
	switch {
	case c.Morph != "" && c.BuildSystem != "":
		return c, errorf(f, m.lineOf("build-system"), "%s: has both morph and build-system; give exactly one", what)
	case c.Morph == "" && c.BuildSystem == "":
		return c, errorf(f, m.line, "%s: has neither morph nor build-system, so it has no build instructions", what)
	}
	if c.BuildDepends, _, err = m.strList("build-depends", what); err != nil {
		return c, err
	}
	c.buildDependsLine = m.lineOf("build-depends")
	c.buildSystemLine = m.lineOf("build-system")
	if mode, ok, err := m.str("build-mode", what); err != nil {
		return c, err
	} else if ok {
		if !buildModes[BuildMode(mode)] {
			return c, errorf(f, m.lineOf("build-mode"), "%s: unknown build-mode %q (want staging, bootstrap or test)", what, mode)
		}
		c.BuildMode = BuildMode(mode)
	}
	if prefix, ok, err := m.str("prefix", what); err != nil {
		return c, err
	} else if ok {
		if !path.IsAbs(prefix) {
			return c, errorf(f, m.lineOf("prefix"), "%s: prefix %q must be an absolute path", what, prefix)
		}
		c.Prefix = prefix
	}
	if c.MaxJobs, _, err = m.integer("max-jobs", what); err != nil {
		return c, err
	}
	if c.MaxJobs < 0 {
		return c, errorf(f, m.lineOf("max-jobs"), "%s: max-jobs must not be negative", what)
	}
	if subs, ok, err := m.mappingField("submodules", what); err != nil {
		return c, err
	} else if ok {
		for _, p := range subs.keys {
			sm, err := readMapping(f, subs.values[p], fmt.Sprintf("%s: submodule %q", what, p))
			if err != nil {
				return c, err
			}
			if err := sm.checkKnown(fmt.Sprintf("%s: submodule %q", what, p), submoduleFields); err != nil {
				return c, err
			}
			url, err := sm.requiredStr("url", fmt.Sprintf("%s: submodule %q", what, p))
			if err != nil {
				return c, err
			}
			c.Submodules = append(c.Submodules, Submodule{Path: p, URL: url})
		}
	}
	if arts, ok, err := m.mappingField("artifacts", what); err != nil {
		return c, err
	} else if ok {
		c.Artifacts = map[string]string{}
		for _, k := range arts.keys {
			v, _, err := arts.str(k, what+": artifacts")
			if err != nil {
				return c, err
			}
			if v == "" {
				return c, errorf(f, arts.lineOf(k), "%s: artifacts: %q must name a stratum artifact", what, k)
			}
			c.Artifacts[k] = v
		}
	}
	return c, nil
}

// ParseChunk parses a chunk morph's content; file names it in errors.
func ParseChunk(file string, data []byte) (*Chunk, error) {
	m, _, err := parseMorph(file, data, "chunk")
	if err != nil {
		return nil, err
	}
	return chunkFromMapping(m)
}

func chunkFromMapping(m *mapping) (*Chunk, error) {
	f := m.file
	if err := m.checkKnown("chunk", chunkFields); err != nil {
		return nil, err
	}
	c := &Chunk{File: f, Commands: map[string][]string{}}
	var err error
	if c.Name, err = m.requiredStr("name", "chunk"); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("chunk %q", c.Name)
	if c.Description, _, err = m.str("description", what); err != nil {
		return nil, err
	}
	if c.BuildSystem, _, err = m.str("build-system", what); err != nil {
		return nil, err
	}
	c.buildSystemLine = m.lineOf("build-system")
	for _, field := range commandFields() {
		cmds, ok, err := m.strList(field, what)
		if err != nil {
			return nil, err
		}
		if ok {
			c.Commands[field] = cmds
		}
	}
	if c.MaxJobs, _, err = m.integer("max-jobs", what); err != nil {
		return nil, err
	}
	if c.MaxJobs < 0 {
		return nil, errorf(f, m.lineOf("max-jobs"), "%s: max-jobs must not be negative", what)
	}
	devices, _, err := m.list("devices", what)
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		dev, err := parseDevice(f, d, what)
		if err != nil {
			return nil, err
		}
		c.Devices = append(c.Devices, dev)
	}
	products, _, err := m.list("products", what)
	if err != nil {
		return nil, err
	}
	if c.Products, err = parseSplitRules(f, products, what+": products"); err != nil {
		return nil, err
	}
	if si, ok, err := m.mappingField("system-integration", what); err != nil {
		return nil, err
	} else if ok {
		c.SystemIntegration = map[string]map[string][]string{}
		c.systemIntegrationLines = si.lines
		for _, art := range si.keys {
			steps, err := readMapping(f, si.values[art], fmt.Sprintf("%s: system-integration %q", what, art))
			if err != nil {
				return nil, err
			}
			c.SystemIntegration[art] = map[string][]string{}
			for _, step := range steps.keys {
				cmds, _, err := steps.strList(step, fmt.Sprintf("%s: system-integration %q", what, art))
				if err != nil {
					return nil, err
				}
				c.SystemIntegration[art][step] = cmds
			}
		}
	}
	return c, nil
}

func parseDevice(f string, n *yaml.Node, chunk string) (Device, error) {
	what := chunk + ": device"
	m, err := readMapping(f, n, what)
	if err != nil {
		return Device{}, err
	}
	if err := m.checkKnown(what, deviceFields); err != nil {
		return Device{}, err
	}
	d := Device{}
	if d.Type, err = m.requiredStr("type", what); err != nil {
		return d, err
	}
	if d.Type != "c" && d.Type != "b" {
		return d, errorf(f, m.lineOf("type"), "%s: type must be c or b, not %q", what, d.Type)
	}
	if d.Filename, err = m.requiredStr("filename", what); err != nil {
		return d, err
	}
	for _, field := range []struct {
		key string
		dst *uint32
	}{{"permissions", &d.Permissions}, {"uid", &d.UID}, {"gid", &d.GID}, {"major", &d.Major}, {"minor", &d.Minor}} {
		v, err := m.deviceNumber(field.key, what)
		if err != nil {
			return d, err
		}
		if v < 0 || v > 1<<31 {
			return d, errorf(f, m.lineOf(field.key), "%s: %s out of range", what, field.key)
		}
		*field.dst = uint32(v)
	}
	return d, nil
}

// deviceNumber reads an integer that real definitions sometimes quote, such
// as permissions '0600'; a leading 0 means octal either way.
func (m *mapping) deviceNumber(key, what string) (int, error) {
	v, ok := m.values[key]
	if !ok {
		return 0, nil
	}
	v = deref(v)
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!str") {
		return 0, errorf(m.file, v.Line, "%s: %s must be a number, not %s", what, key, kindName(v))
	}
	i, err := strconv.ParseInt(v.Value, 0, 64)
	if err != nil {
		return 0, errorf(m.file, v.Line, "%s: %s must be a number, not %q", what, key, v.Value)
	}
	return int(i), nil
}
