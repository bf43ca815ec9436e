package definitions_test

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"regexp"
	"slices"
	"testing"
)

func keys(t *testing.T, edits []edit) map[string]string {
	t.Helper()
	g := mustResolve(t, apply(t, edits))
	out := map[string]string{}
	for _, s := range g.Steps {
		out[s.Name] = s.CacheKey.String()
	}
	return out
}

func changed(before, after map[string]string) []string {
	var out []string
	for name, k := range before {
		if after[name] != k {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestCacheKeysAreWellFormedDistinctAndDeterministic(t *testing.T) {
	a, b := keys(t, nil), keys(t, nil)
	if !maps.Equal(a, b) {
		t.Fatal("two resolutions of the same tree gave different keys")
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]string{}
	for name, k := range a {
		if !hex64.MatchString(k) {
			t.Errorf("%s: key %q is not 64 hex characters", name, k)
		}
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s share key %s", name, other, k)
		}
		seen[k] = name
	}
}

// TestCacheKeyEncodingIsStable spells out the canonical document behind one
// key. Caches are shared between distbuild versions, so an accidental change
// to the encoding would silently rebuild (or worse, mix) everything. If you
// change the encoding on purpose, bump cacheKeyFormat and update this.
func TestCacheKeyEncodingIsStable(t *testing.T) {
	const doc = `{"format":"distbuild-cache-key/1","kind":"chunk","name":"stage1","arch":"x86_64",` +
		`"commit":"1111111111111111111111111111111111111111","build-mode":"bootstrap","prefix":"/usr",` +
		`"phases":[{"name":"configure","commands":null},{"name":"build","commands":null},{"name":"test","commands":null},` +
		`{"name":"install","commands":null},{"name":"strip","commands":null}],` +
		`"max-jobs":0,"devices":null,"submodules":null,"system-integration":null,"split-rules":[` +
		`{"artifact":"stage1-bins","include":["(usr/)?s?bin/.*"]},` +
		`{"artifact":"stage1-libs","include":["(usr/)?lib(32|64)?/lib[^/]*\\.so(\\.\\d+)*","(usr/)?libexec/.*"]},` +
		`{"artifact":"stage1-devel","include":["(usr/)?include/.*","(usr/)?lib(32|64)?/lib.*\\.a","(usr/)?lib(32|64)?/lib.*\\.la","(usr/)?(lib(32|64)?|share)/pkgconfig/.*\\.pc"]},` +
		`{"artifact":"stage1-doc","include":["(usr/)?share/doc/.*","(usr/)?share/man/.*","(usr/)?share/info/.*"]},` +
		`{"artifact":"stage1-locale","include":["(usr/)?share/locale/.*","(usr/)?share/i18n/.*","(usr/)?share/zoneinfo/.*"]},` +
		`{"artifact":"stage1-misc","include":[".*"]}],"dependencies":[]}`
	sum := sha256.Sum256([]byte(doc))
	if got, want := keys(t, nil)["stage1"], hex.EncodeToString(sum[:]); got != want {
		t.Errorf("key of stage1 = %s, want %s (sha256 of the documented encoding): was the encoding changed without bumping cacheKeyFormat?", got, want)
	}
}

func TestCacheKeysIgnoreWhatCannotChangeTheOutput(t *testing.T) {
	base := keys(t, nil)
	for name, edits := range map[string][]edit{
		"descriptions": {
			{file: "systems/base.morph", old: "description: A small system.", new: "description: Something else."},
			{file: "strata/core.morph", old: "description: Core libraries.", new: "description: Changed."},
			{file: "strata/core/libpng.morph", old: "description: PNG library.", new: "description: Changed."},
		},
		"unpetrify-ref":            {{file: "strata/core.morph", old: "unpetrify-ref: v1.3", new: "unpetrify-ref: v1.3.1"}},
		"repo URL":                 {{file: "strata/core.morph", old: "repo: upstream:zlib", new: "repo: https://mirror.example/zlib.git"}},
		"configuration-extensions": {{file: "systems/base.morph", old: "- set-hostname", new: "- set-hostname\n- add-users"}},
		"formatting and key order": {{file: "strata/core.morph", old: "  repo: upstream:zlib\n  ref: 3333333333333333333333333333333333333333\n",
			new: "  ref:   '3333333333333333333333333333333333333333'   # pinned\n\n  repo: upstream:zlib\n"}},
	} {
		if c := changed(base, keys(t, edits)); len(c) != 0 {
			t.Errorf("changing %s changed the keys of %v; want no change", name, c)
		}
	}
}

func TestCacheKeysChangeExactlyDownstreamOfAChange(t *testing.T) {
	base := keys(t, nil)
	downstreamOfLibpng := []string{"app", "base-system", "core", "libpng", "tools"}
	downstreamOfZlib := []string{"app", "base-system", "core", "libpng", "tools", "zlib"}
	cases := []struct {
		name  string
		edits []edit
		want  []string
	}{
		{"command of a chunk without a morph", []edit{{file: "strata/core.morph", old: "build-system: autotools", new: "build-system: cmake"}}, downstreamOfZlib},
		{"command in a chunk morph", []edit{{file: "strata/core/libpng.morph", old: "install-strip", new: "install"}}, downstreamOfLibpng},
		{"pre-command added", []edit{{file: "strata/core/libpng.morph", old: "max-jobs: 2\n", new: "max-jobs: 2\npre-build-commands:\n- true\n"}}, downstreamOfLibpng},
		{"empty command list replacing the build system's", []edit{{file: "strata/core/libpng.morph", old: "max-jobs: 2\n", new: "max-jobs: 2\nstrip-commands: []\n"}}, downstreamOfLibpng},
		{"DEFAULTS build system commands", []edit{{file: "DEFAULTS", new: "build-systems:\n  manual: {}\n  cmake: {build-commands: [make]}\n  autotools: {build-commands: [make -k]}\n"}}, downstreamOfZlib},
		{"ref", []edit{{file: "strata/core.morph", old: "ref: 4444444444444444444444444444444444444444", new: "ref: 4444444444444444444444444444444444444445"}}, downstreamOfLibpng},
		{"ref of a bootstrap chunk", []edit{{file: "strata/build-essential.morph", old: "ref: 2222222222222222222222222222222222222222", new: "ref: 2222222222222222222222222222222222222223"}},
			[]string{"app", "base-system", "build-essential", "cc", "core", "libpng", "tools", "zlib"}},
		{"chunk dependency removed", []edit{{file: "strata/core.morph", old: "  build-depends:\n  - zlib\n", new: ""}}, downstreamOfLibpng},
		{"stratum dependency added", []edit{{file: "strata/tools.morph", old: "- morph: strata/core.morph\n", new: "- morph: strata/core.morph\n- morph: strata/build-essential.morph\n"}},
			[]string{"app", "base-system", "tools"}},
		{"max-jobs", []edit{{file: "strata/core/libpng.morph", old: "max-jobs: 2", new: "max-jobs: 3"}}, downstreamOfLibpng},
		{"build-mode", []edit{{file: "strata/core.morph", old: "  build-system: autotools\n", new: "  build-system: autotools\n  build-mode: bootstrap\n"}}, downstreamOfZlib},
		{"prefix", []edit{{file: "strata/core.morph", old: "  build-system: autotools\n", new: "  build-system: autotools\n  prefix: /opt\n"}}, downstreamOfZlib},
		{"chunk split rules", []edit{{file: "strata/core/libpng.morph", old: "usr/bin/png.*", new: "usr/bin/png-.*"}}, downstreamOfLibpng},
		{"system-integration", []edit{{file: "strata/core/libpng.morph", old: "- ldconfig", new: "- ldconfig -X"}}, downstreamOfLibpng},
		{"devices", []edit{{file: "strata/core/libpng.morph", old: "max-jobs: 2\n", new: "max-jobs: 2\ndevices:\n- {type: c, filename: /dev/null, permissions: '0666', major: 1, minor: 3}\n"}}, downstreamOfLibpng},
		{"stratum artifacts mapping", []edit{{file: "strata/core.morph", old: "libpng-tools: core-devel", new: "libpng-tools: core-runtime"}}, []string{"app", "base-system", "core", "tools"}},
		{"system artifact filter", []edit{{file: "systems/base.morph", old: "  - -runtime", new: "  - -devel"}}, []string{"base-system"}},
		{"arch", []edit{{file: "systems/base.morph", old: "arch: x86_64", new: "arch: ppc64"}}, slices.Sorted(maps.Keys(base))},
	}
	for _, tc := range cases {
		if got := changed(base, keys(t, tc.edits)); !slices.Equal(got, tc.want) {
			t.Errorf("changing %s changed the keys of %v; want exactly %v", tc.name, got, tc.want)
		}
	}
}
