package definitions_test

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"distbuild/definitions"
	"distbuild/digest"
)

// collidingTree is the base tree with every name clash real repositories
// have: chunk zlib in core and again in tools (built on other strata) and
// in extras (built exactly like core's), a chunk named like its stratum
// (tools in tools), and a system named like one of its strata (core).
func collidingTree(t *testing.T) *definitions.Graph {
	t.Helper()
	g, err := resolve(t, collidingFS(t), "systems/base.morph")
	if err != nil {
		t.Fatalf("resolving definitions whose names collide: %v", err)
	}
	return g
}

// collidingFS is the tree collidingTree resolves.
func collidingFS(t *testing.T) fstest.MapFS {
	t.Helper()
	const zlib = "- name: zlib\n  repo: upstream:zlib\n  ref: 3333333333333333333333333333333333333333\n  unpetrify-ref: v1.3\n  build-system: autotools\n"
	return apply(t, []edit{
		{file: "strata/tools.morph", old: "chunks:\n", new: "chunks:\n" + zlib + "- name: tools\n  repo: upstream:tools\n  ref: 6666666666666666666666666666666666666666\n  build-system: manual\n"},
		{file: "strata/extras.morph", new: "name: extras\nkind: stratum\nbuild-depends:\n- morph: strata/build-essential.morph\nchunks:\n" + zlib},
		{file: "systems/base.morph", old: "name: base-system", new: "name: core"},
		{file: "systems/base.morph", old: "- name: tools\n", new: "- name: extras\n  morph: strata/extras.morph\n- name: tools\n"},
	})
}

func TestCollidingNamesGetUniqueNamesByTheDocumentedRule(t *testing.T) {
	g := collidingTree(t)
	want := []string{"stage1", "cc", "build-essential", "zlib", "libpng", "core", "extras", "zlib@tools", "tools", "app", "tools.stratum", "core.system"}
	if got := names(g.Steps); !slices.Equal(got, want) {
		t.Fatalf("steps = %v\nwant    %v", got, want)
	}
	for _, tc := range []struct{ name, defined, kind, stratum string }{
		{"zlib@tools", "zlib", "chunk", "tools"},
		{"tools", "tools", "chunk", "tools"},
		{"tools.stratum", "tools", "stratum", ""},
		{"core.system", "core", "system", ""},
	} {
		s := g.Step(tc.name)
		if s == nil || s.DefinedName != tc.defined || s.Kind.String() != tc.kind || (s.Chunk != nil && s.Chunk.Stratum != tc.stratum) {
			t.Errorf("step %q = %+v, want the %s %q", tc.name, s, tc.kind, tc.defined)
		}
	}
	if g.Name != "core" || g.Systems[0] != g.Step("core.system") {
		t.Errorf("graph of %q with systems %v, want core and its system step", g.Name, names(g.Systems))
	}
	if got := names(g.Step("zlib@tools").Deps); !slices.Equal(got, []string{"core"}) {
		t.Errorf("zlib@tools depends on %v, want [core]", got)
	}
}

func TestAStepOfASecondArchitectureIsQualifiedByItAfterAnyOtherQualifier(t *testing.T) {
	fsys := collidingFS(t)
	base := string(fsys["systems/base.morph"].Data)
	fsys = with(fsys, map[string]*string{
		"systems/base-arm.morph": ptr(strings.Replace(base, "arch: x86_64", "arch: armv7lhf", 1)),
		"clusters/both.morph":    ptr("name: both\nkind: cluster\nsystems:\n- morph: systems/base.morph\n- morph: systems/base-arm.morph\n"),
	})
	g, err := resolve(t, fsys, "clusters/both.morph")
	if err != nil {
		t.Fatal(err)
	}
	x86 := []string{"stage1", "cc", "build-essential", "zlib", "libpng", "core", "extras", "zlib@tools", "tools", "app", "tools.stratum", "core.system"}
	var arm []string
	for _, n := range x86 {
		arm = append(arm, n+"@armv7lhf")
	}
	if got := names(g.Steps); !slices.Equal(got, slices.Concat(x86, arm)) {
		t.Fatalf("steps = %v\nwant    %v", got, slices.Concat(x86, arm))
	}
	if got := names(g.Systems); !slices.Equal(got, []string{"core.system", "core.system@armv7lhf"}) {
		t.Errorf("systems = %v", got)
	}
	if s := g.Step("zlib@tools@armv7lhf"); s.DefinedName != "zlib" || s.Chunk.Stratum != "tools" || s.Arch != "armv7lhf" || !slices.Equal(names(s.Deps), []string{"core@armv7lhf"}) {
		t.Errorf("zlib@tools@armv7lhf is %s of %s for %s on %v, want tools' zlib for armv7lhf on core@armv7lhf", s.DefinedName, s.Chunk.Stratum, s.Arch, names(s.Deps))
	}
	if extras := g.Step("extras@armv7lhf").Stratum.Chunks; len(extras) != 1 || extras[0] != g.Step("zlib@armv7lhf") {
		t.Errorf("armv7lhf's extras holds %v, want armv7lhf's core zlib step", names(extras))
	}
}

func TestQualifiedNamesNeverChangeCacheKeys(t *testing.T) {
	base, g := mustResolve(t, baseTree()), collidingTree(t)
	for _, pair := range [][2]string{{"zlib", "zlib"}, {"libpng", "libpng"}, {"core", "core"}, {"app", "app"}} {
		if a, b := base.Step(pair[0]).CacheKey, g.Step(pair[1]).CacheKey; a != b {
			t.Errorf("%s has key %s alone but %s as %s", pair[0], a[:12], b[:12], pair[1])
		}
	}
}

func TestSameChunkBuiltTheSameWayInTwoStrataIsOneStep(t *testing.T) {
	g := collidingTree(t)
	zlib := g.Step("zlib")
	if g.Step("zlib@extras") != nil {
		t.Error("extras' zlib, built like core's, became a step of its own")
	}
	if extras := g.Step("extras").Stratum.Chunks; len(extras) != 1 || extras[0] != zlib {
		t.Errorf("extras holds %v, want core's zlib step", names(extras))
	}
	if other := g.Step("zlib@tools"); other.CacheKey == zlib.CacheKey {
		t.Error("tools' zlib, built on other strata, shares core's cache key")
	}
	keys := map[digest.CacheKey]string{}
	for _, s := range g.Steps {
		if prev, dup := keys[s.CacheKey]; dup {
			t.Errorf("steps %s and %s share cache key %s", prev, s.Name, s.CacheKey.String()[:12])
		}
		keys[s.CacheKey] = s.Name
	}
}

func TestWhatMorphToleratedIsAWarningNotAnError(t *testing.T) {
	fsys := apply(t, []edit{
		{file: "strata/core/libpng.morph", old: "  libpng-libs:", new: "  libpng-libz:"},
		{file: "systems/base.morph", old: "  - -runtime", new: "  - -runtime\n  - -runtim"},
	})
	g, err := resolve(t, fsys, "systems/base.morph")
	if err != nil {
		t.Fatalf("got %v, want warnings only", err)
	}
	var got []string
	for _, w := range g.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`strata/core/libpng.morph:15: stratum "core": chunk "libpng": system-integration names "libpng-libz", which is not one of the chunk's split artifacts`,
		`systems/base.morph:14: system "base-system": stratum "core" has no artifact "core-runtim", so this filter entry selects nothing`,
	}
	if len(got) != len(want) {
		t.Fatalf("warnings = %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d = %q\nwant prefix   %q", i, got[i], want[i])
		}
	}
	if si := g.Step("libpng").Chunk.SystemIntegration; len(si) != 0 {
		t.Errorf("system-integration kept %v for an artifact that never exists", si)
	}
	if arts := g.Systems[0].System.Strata[1].Artifacts; !slices.Equal(arts, []string{"core-runtime"}) {
		t.Errorf("system takes %v of core, want [core-runtime]", arts)
	}
	if len(mustResolve(t, baseTree()).Warnings) != 0 {
		t.Error("the base tree has warnings")
	}
}
