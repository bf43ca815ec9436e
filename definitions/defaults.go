package definitions

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
)

// BuildSystem is a named set of default commands, so that the many chunks
// built the same way (./configure && make) need no commands of their own.
type BuildSystem struct {
	Name string
	// Commands maps a phase name ("configure", ...) to its commands.
	Commands map[string][]string
}

// Defaults is the parsed DEFAULTS file: build systems and the split rules
// applied after a chunk's or stratum's own products rules.
type Defaults struct {
	BuildSystems      map[string]*BuildSystem
	ChunkSplitRules   []SplitRule
	StratumSplitRules []SplitRule
}

//go:embed builtin-DEFAULTS.yaml
var builtinDefaultsYAML []byte

const (
	versionFile  = "VERSION"
	defaultsFile = "DEFAULTS"
)

// supportedVersions are the definitions format versions distbuild reads.
var supportedVersions = map[int]bool{7: true, 8: true}

var builtinDefaults = mustParseBuiltinDefaults()

func mustParseBuiltinDefaults() *Defaults {
	d, err := parseDefaults("builtin DEFAULTS", builtinDefaultsYAML, nil)
	if err != nil {
		// The built-in file is part of the program; a test parses it.
		panic(err)
	}
	return d
}

var (
	defaultsFields      = fieldSet("build-systems", "split-rules")
	buildSystemFields   = buildSystemFieldSet()
	splitRulesFields    = fieldSet("chunk", "stratum")
	versionFields       = fieldSet("version")
	buildSystemCommands = []string{"configure", "build", "test", "install", "strip"}
)

func buildSystemFieldSet() map[string]bool {
	s := map[string]bool{}
	for _, p := range Phases {
		s[p+"-commands"] = true
	}
	return s
}

// parseDefaults parses a DEFAULTS file. Sections it leaves out are taken from
// fallback (nil for none).
func parseDefaults(file string, data []byte, fallback *Defaults) (*Defaults, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	m, err := readMapping(file, root, "DEFAULTS")
	if err != nil {
		return nil, err
	}
	if err := m.checkKnown("DEFAULTS", defaultsFields); err != nil {
		return nil, err
	}
	d := &Defaults{BuildSystems: map[string]*BuildSystem{}}
	if fallback != nil {
		*d = *fallback
	}
	if bs, ok, err := m.mappingField("build-systems", "DEFAULTS"); err != nil {
		return nil, err
	} else if ok {
		d.BuildSystems = map[string]*BuildSystem{}
		for _, name := range bs.keys {
			what := fmt.Sprintf("DEFAULTS: build system %q", name)
			sm, err := readMapping(file, bs.values[name], what)
			if err != nil {
				return nil, err
			}
			if err := sm.checkKnown(what, buildSystemFields); err != nil {
				return nil, err
			}
			b := &BuildSystem{Name: name, Commands: map[string][]string{}}
			for _, phase := range buildSystemCommands {
				cmds, _, err := sm.strList(phase+"-commands", what)
				if err != nil {
					return nil, err
				}
				b.Commands[phase] = cmds
			}
			d.BuildSystems[name] = b
		}
	}
	if sr, ok, err := m.mappingField("split-rules", "DEFAULTS"); err != nil {
		return nil, err
	} else if ok {
		if err := sr.checkKnown("DEFAULTS: split-rules", splitRulesFields); err != nil {
			return nil, err
		}
		if items, ok, err := sr.list("chunk", "DEFAULTS: split-rules"); err != nil {
			return nil, err
		} else if ok {
			if d.ChunkSplitRules, err = parseSplitRules(file, items, "DEFAULTS: chunk split"); err != nil {
				return nil, err
			}
		}
		if items, ok, err := sr.list("stratum", "DEFAULTS: split-rules"); err != nil {
			return nil, err
		} else if ok {
			if d.StratumSplitRules, err = parseSplitRules(file, items, "DEFAULTS: stratum split"); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// readVersion reads and checks the VERSION file.
func readVersion(fsys fs.FS) (int, error) {
	data, err := fs.ReadFile(fsys, versionFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errorf(versionFile, 0, "file not found: is this the root of a definitions repository?")
	}
	if err != nil {
		return 0, errorf(versionFile, 0, "cannot read: %v", unwrapPathError(err))
	}
	root, err := parseYAML(versionFile, data)
	if err != nil {
		return 0, err
	}
	m, err := readMapping(versionFile, root, "VERSION")
	if err != nil {
		return 0, err
	}
	if err := m.checkKnown("VERSION", versionFields); err != nil {
		return 0, err
	}
	v, ok, err := m.integer("version", "VERSION")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errorf(versionFile, m.line, "missing required field \"version\"")
	}
	if !supportedVersions[v] {
		return 0, errorf(versionFile, m.lineOf("version"), "unsupported definitions version %d (distbuild reads versions 7 and 8)", v)
	}
	return v, nil
}

// readDefaults reads DEFAULTS, falling back to the built-in defaults.
func readDefaults(fsys fs.FS) (*Defaults, error) {
	data, err := fs.ReadFile(fsys, defaultsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return builtinDefaults, nil
	}
	if err != nil {
		return nil, errorf(defaultsFile, 0, "cannot read: %v", unwrapPathError(err))
	}
	return parseDefaults(defaultsFile, data, builtinDefaults)
}
