package definitions_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"distbuild/definitions"
)

// edit describes one change to a file of the base tree: replace old (which
// must occur) with new, or replace the whole file when old is empty; a nil
// new deletes the file.
type edit struct {
	file     string
	old, new string
	remove   bool
}

func apply(t *testing.T, edits []edit) fstest.MapFS {
	t.Helper()
	fsys := baseTree()
	changes := map[string]*string{}
	for _, e := range edits {
		if e.remove {
			changes[e.file] = nil
			continue
		}
		content := e.new
		if e.old != "" {
			var cur string
			if c, ok := changes[e.file]; ok {
				cur = *c
			} else if f, ok := fsys[e.file]; ok {
				cur = string(f.Data)
			}
			if !strings.Contains(cur, e.old) {
				t.Fatalf("test bug: %q not found in %s", e.old, e.file)
			}
			content = strings.Replace(cur, e.old, e.new, 1)
		}
		changes[e.file] = &content
	}
	return with(fsys, changes)
}

// TestBadDefinitionsAreReportedWithFileAndLine covers every error class the
// format defines. Line numbers refer to the base tree in fixture_test.go.
func TestBadDefinitionsAreReportedWithFileAndLine(t *testing.T) {
	const core, sys, libpng, tools, be = "strata/core.morph", "systems/base.morph", "strata/core/libpng.morph", "strata/tools.morph", "strata/build-essential.morph"
	cases := []struct {
		name     string
		edits    []edit
		wantFile string
		wantLine int
		wantMsg  string
	}{
		{"YAML syntax error", []edit{{file: core, old: "description: Core libraries.", new: "description: Core: libraries: bad"}},
			core, 3, "YAML syntax error"},
		{"unknown kind", []edit{{file: core, old: "kind: stratum", new: "kind: strtum"}},
			core, 2, `unknown kind "strtum"`},
		{"no kind", []edit{{file: core, old: "kind: stratum\n", new: ""}},
			core, 1, "morph has no kind"},
		{"kind used in the wrong place", []edit{{file: sys, old: "morph: strata/tools.morph", new: "morph: strata/core/libpng.morph"}},
			libpng, 2, "kind is chunk, but it is used as a stratum"},
		{"morph is not a mapping", []edit{{file: tools, new: "- a\n- b\n"}},
			tools, 1, "morph must be a mapping, not a list"},
		{"empty morph", []edit{{file: tools, new: ""}},
			tools, 0, "file is empty"},
		{"system missing arch", []edit{{file: sys, old: "arch: x86_64\n", new: ""}},
			sys, 1, `missing required field "arch"`},
		{"chunk missing ref", []edit{{file: core, old: "  ref: 3333333333333333333333333333333333333333\n", new: ""}},
			core, 7, `chunk "zlib": missing required field "ref"`},
		{"empty ref", []edit{{file: core, old: "ref: 3333333333333333333333333333333333333333", new: "ref: ''"}},
			core, 9, `chunk "zlib": missing required field "ref"`},
		{"ref is not a string", []edit{{file: core, old: "ref: 3333333333333333333333333333333333333333", new: "ref: [a]"}},
			core, 9, "ref must be a string"},
		{"stratum missing name", []edit{{file: core, old: "name: core\n", new: ""}},
			core, 1, `missing required field "name"`},
		{"unknown field in chunk spec", []edit{{file: core, old: "  build-depends:\n  - zlib", new: "  buld-depends:\n  - zlib"}},
			core, 16, `chunk "libpng": unknown field "buld-depends"`},
		{"unknown field in chunk morph", []edit{{file: libpng, old: "max-jobs: 2", new: "max-job: 2"}},
			libpng, 9, `unknown field "max-job"`},
		{"unknown field in system strata entry", []edit{{file: sys, old: "  morph: strata/tools.morph", new: "  morph: strata/tools.morph\n  artefacts: []"}},
			sys, 16, `unknown field "artefacts"`},
		{"obsolete disk-size", []edit{{file: sys, old: "arch: x86_64\n", new: "arch: x86_64\ndisk-size: 4G\n"}},
			sys, 5, `field "disk-size" is obsolete`},
		{"obsolete system-kind", []edit{{file: sys, old: "arch: x86_64\n", new: "arch: x86_64\nsystem-kind: rootfs-tarball\n"}},
			sys, 5, `field "system-kind" is obsolete`},
		{"duplicate key", []edit{{file: core, old: "description: Core libraries.\n", new: "description: Core libraries.\ndescription: again\n"}},
			core, 4, `key "description" appears twice (first on line 3)`},
		{"unknown build system in chunk spec", []edit{{file: core, old: "build-system: autotools", new: "build-system: autotoolz"}},
			core, 11, `chunk "zlib": unknown build system "autotoolz"`},
		{"unknown build system in chunk morph", []edit{{file: libpng, old: "build-system: autotools", new: "build-system: autotoolz"}},
			libpng, 4, `unknown build system "autotoolz"`},
		{"unknown build-depends name", []edit{{file: core, old: "  - zlib\n", new: "  - zlibb\n"}},
			core, 16, `chunk "libpng" build-depends on "zlibb", which is not a chunk of this stratum`},
		{"chunk build-depends on itself", []edit{{file: core, old: "  - zlib\n", new: "  - libpng\n"}},
			core, 16, `chunk "libpng" build-depends on itself`},
		{"build-depends is not a list", []edit{{file: core, old: "  build-depends:\n  - zlib\n", new: "  build-depends: zlib\n"}},
			core, 16, "build-depends must be a list"},
		{"stratum build-depends is not a list", []edit{{file: core, old: "build-depends:\n- morph: strata/build-essential.morph\n", new: "build-depends: strata/build-essential.morph\n"}},
			core, 4, "build-depends must be a list"},
		{"chunk cycle", []edit{{file: core, old: "  build-system: autotools\n", new: "  build-system: autotools\n  build-depends:\n  - libpng\n"}},
			core, 12, "build-depends cycle between chunks: zlib -> libpng -> zlib"},
		{"stratum cycle", []edit{{file: be, old: "chunks:\n", new: "build-depends:\n- morph: strata/tools.morph\nchunks:\n"}},
			core, 5, "build-depends cycle between strata: strata/build-essential.morph -> strata/tools.morph -> strata/core.morph -> strata/build-essential.morph"},
		{"stratum build-depends on itself", []edit{{file: core, old: "morph: strata/build-essential.morph", new: "morph: strata/core.morph"}},
			core, 5, `stratum "core" build-depends on itself`},
		{"duplicate chunk in a stratum", []edit{{file: core, old: "- name: libpng", new: "- name: zlib"}},
			core, 12, `duplicate chunk "zlib" (also on line 7)`},
		{"two strata of one name", []edit{{file: tools, old: "name: tools", new: "name: core"}, {file: sys, old: "- name: tools\n", new: "- name: core\n"}},
			tools, 1, `stratum name "core" is also the name of the stratum defined in strata/core.morph:1`},
		{"missing stratum morph", []edit{{file: sys, old: "morph: strata/tools.morph", new: "morph: strata/toolz.morph"}},
			sys, 14, `stratum morph "strata/toolz.morph": file not found`},
		{"missing chunk morph", []edit{{file: core, old: "morph: strata/core/libpng.morph", new: "morph: strata/core/libpgn.morph"}},
			core, 12, `chunk morph "strata/core/libpgn.morph": file not found`},
		{"morph path escaping the tree", []edit{{file: sys, old: "morph: strata/tools.morph", new: "morph: ../tools.morph"}},
			sys, 14, "not a valid morph path"},
		{"unsupported VERSION", []edit{{file: "VERSION", new: "version: 9\n"}},
			"VERSION", 1, "unsupported definitions version 9"},
		{"missing VERSION", []edit{{file: "VERSION", remove: true}},
			"VERSION", 0, "file not found"},
		{"VERSION not an integer", []edit{{file: "VERSION", new: "version: seven\n"}},
			"VERSION", 1, "version must be an integer"},
		{"both morph and build-system", []edit{{file: core, old: "  morph: strata/core/libpng.morph\n", new: "  morph: strata/core/libpng.morph\n  build-system: manual\n"}},
			core, 16, `chunk "libpng": has both morph and build-system`},
		{"neither morph nor build-system", []edit{{file: core, old: "  build-system: autotools\n", new: ""}},
			core, 7, `chunk "zlib": has neither morph nor build-system`},
		{"max-jobs is not an integer", []edit{{file: libpng, old: "max-jobs: 2", new: "max-jobs: two"}},
			libpng, 9, "max-jobs must be an integer"},
		{"stratum with no chunks", []edit{{file: tools, new: "name: tools\nkind: stratum\nbuild-depends:\n- morph: strata/core.morph\nchunks: []\n"}},
			tools, 5, "must list at least one chunk"},
		{"system with no strata", []edit{{file: sys, new: "name: s\nkind: system\narch: x86_64\nstrata: []\n"}},
			sys, 4, "must list at least one stratum"},
		{"unknown arch", []edit{{file: sys, old: "arch: x86_64", new: "arch: x86_65"}},
			sys, 4, `unknown arch "x86_65"`},
		{"stratum with nothing to build its tools", []edit{{file: core, old: "build-depends:\n- morph: strata/build-essential.morph\n", new: ""}},
			core, 1, "must contain a chunk in bootstrap or test build-mode"},
		{"stratum listed twice in a system", []edit{{file: sys, old: "- name: tools\n", new: "- name: core\n  morph: strata/core.morph\n- name: tools\n"}},
			sys, 14, "stratum strata/core.morph is listed twice (also on line 10)"},
		{"system names a stratum wrongly", []edit{{file: sys, old: "- name: core", new: "- name: kore"}},
			sys, 10, `strata entry is named "kore" but strata/core.morph is stratum "core"`},
		{"unknown build-mode", []edit{{file: core, old: "  build-system: autotools\n", new: "  build-system: autotools\n  build-mode: fast\n"}},
			core, 12, `unknown build-mode "fast"`},
		{"relative prefix", []edit{{file: core, old: "  build-system: autotools\n", new: "  build-system: autotools\n  prefix: usr\n"}},
			core, 12, `prefix "usr" must be an absolute path`},
		{"bad regular expression in products", []edit{{file: libpng, old: "usr/bin/png.*", new: "usr/bin/(png"}},
			libpng, 13, "bad regular expression"},
		{"artifacts map names an unknown chunk artifact", []edit{{file: core, old: "libpng-tools: core-devel", new: "libpng-toolz: core-devel"}},
			core, 12, `artifacts maps "libpng-toolz", which is not one of the chunk's split artifacts`},
		{"artifacts map names an unknown stratum artifact", []edit{{file: core, old: "libpng-tools: core-devel", new: "libpng-tools: core-extras"}},
			core, 12, `to "core-extras", which is not one of the stratum's split artifacts`},
		{"unknown field in DEFAULTS", []edit{{file: "DEFAULTS", new: "build-systems: {}\nsplit_rules: {}\n"}},
			"DEFAULTS", 2, `unknown field "split_rules"`},
		{"bad build system in DEFAULTS", []edit{{file: "DEFAULTS", new: "build-systems:\n  manual:\n    make-commands: []\n"}},
			"DEFAULTS", 3, `unknown field "make-commands"`},
		{"merge key not referring to a mapping", []edit{{file: core, old: "name: core\n", new: "name: core\n<<: [1]\n"}},
			core, 2, "merge key (<<) must refer to a mapping"},
		{"device with a bad type", []edit{{file: libpng, old: "max-jobs: 2\n", new: "max-jobs: 2\ndevices:\n- type: x\n  filename: /dev/null\n"}},
			libpng, 11, "type must be c or b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolve(t, apply(t, tc.edits), "systems/base.morph")
			var de *definitions.Error
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *definitions.Error", err)
			}
			if de.File != tc.wantFile || de.Line != tc.wantLine || !strings.Contains(de.Msg, tc.wantMsg) {
				t.Errorf("got  %v\nwant %s:%d: ...%s...", err, tc.wantFile, tc.wantLine, tc.wantMsg)
			}
		})
	}
}

func TestMissingSystemMorphNamesIt(t *testing.T) {
	_, err := resolve(t, baseTree(), "systems/nope.morph")
	var de *definitions.Error
	if !errors.As(err, &de) || de.File != "systems/nope.morph" || !strings.Contains(de.Msg, "file not found") {
		t.Errorf("got %v, want systems/nope.morph: ... file not found", err)
	}
}

// TestEveryYAMLSyntaxErrorHasALine covers the errors the YAML library gives
// without a line: those on a file's first line and an alias of an unknown
// anchor, which it reports with no position at all.
func TestEveryYAMLSyntaxErrorHasALine(t *testing.T) {
	for _, tc := range []struct {
		data string
		line int
	}{
		{"a: b: c\n", 1},
		{"x: \"\\q\"\n", 1},
		{"\t- : {\n", 1},
		{"%YAML 9.9\n---\na: 1\n", 1},
		{"name: x\nkind: chunk\nbuild-commands: *missing\n", 3},
		{"name: x\nkind: chunk\nb: &missingno [x]\nc: *missingno\nbuild-commands: [*missing]\n", 5},
		{"name: x\nkind: chunk\nb: c: d\n", 3},
		{"name: x\n\n\nb: 'x\n", 4},
	} {
		_, err := definitions.ParseChunk("strata/x/y.morph", []byte(tc.data))
		var de *definitions.Error
		if !errors.As(err, &de) || de.Line != tc.line || strings.Contains(de.Msg, "yaml: ") {
			t.Errorf("%q: got %v, want a YAML syntax error on line %d", tc.data, err, tc.line)
		}
	}
}
