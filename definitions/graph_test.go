package definitions_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"distbuild/definitions"
	"distbuild/splitrule"
)

func TestResolveOrdersEveryStepAfterItsDependencies(t *testing.T) {
	g := mustResolve(t, baseTree())
	want := []string{"stage1", "cc", "build-essential", "zlib", "libpng", "core", "app", "tools", "base-system"}
	if got := names(g.Steps); !slices.Equal(got, want) {
		t.Fatalf("build order = %v, want %v", got, want)
	}
	for i, s := range g.Steps {
		if s.Index() != i {
			t.Errorf("%s: Index() = %d, want %d", s.Name, s.Index(), i)
		}
		for _, d := range s.Deps {
			if d.Index() >= i {
				t.Errorf("%s (position %d) depends on %s (position %d), which comes later", s.Name, i, d.Name, d.Index())
			}
		}
	}
	if g.Name != "base-system" || len(g.Systems) != 1 || g.Systems[0].Name != "base-system" || g.Arch != "x86_64" {
		t.Errorf("system = %q arch %q, want base-system x86_64", g.Name, g.Arch)
	}
}

func TestChunkDependsOnNamedChunksAndBuildDependedStrata(t *testing.T) {
	g := mustResolve(t, baseTree())
	cases := map[string][]string{
		"stage1":          nil,
		"cc":              {"stage1"},
		"zlib":            {"build-essential"},
		"libpng":          {"zlib", "build-essential"},
		"app":             {"core"},
		"core":            {"zlib", "libpng"},
		"base-system":     {"build-essential", "core", "tools"},
		"build-essential": {"stage1", "cc"},
	}
	for step, want := range cases {
		if got := names(g.Step(step).Deps); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("deps of %s = %v, want %v", step, got, want)
		}
	}
}

func TestStagingHoldsEveryChunkDependedOnTransitively(t *testing.T) {
	g := mustResolve(t, baseTree())
	cases := map[string][]string{
		"app":    {"stage1", "cc", "zlib", "libpng"},
		"libpng": {"stage1", "cc", "zlib"},
		"zlib":   {"stage1", "cc"},
		"cc":     {"stage1"},
		"stage1": nil,
	}
	for step, want := range cases {
		if got := names(g.Staging(g.Step(step))); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("staging of %s = %v, want %v", step, got, want)
		}
	}
}

func phase(s *definitions.Step, name string) []string {
	for _, p := range s.Chunk.Phases {
		if p.Name == name {
			return p.Commands
		}
	}
	return nil
}

func TestEffectiveCommandsCombinePrePostChunkAndBuildSystem(t *testing.T) {
	g := mustResolve(t, baseTree())
	libpng := g.Step("libpng")
	if got := names2(libpng.Chunk.Phases); !slices.Equal(got, definitions.Phases) {
		t.Fatalf("phases = %v, want %v", got, definitions.Phases)
	}
	configure := phase(libpng, "configure")
	if len(configure) != 3 || configure[0] != "autoreconf -fi" || !strings.HasPrefix(configure[2], "./configure") {
		t.Errorf("configure = %q, want the pre-command then autotools' two commands", configure)
	}
	if got := phase(libpng, "install"); !slices.Equal(got, []string{`make DESTDIR="$DESTDIR" install-strip`}) {
		t.Errorf("install = %q, want the chunk's own command replacing autotools'", got)
	}
	if got := phase(libpng, "build"); !slices.Equal(got, []string{"make"}) {
		t.Errorf("build = %q, want autotools' make", got)
	}
	if libpng.Chunk.MaxJobs != 2 || libpng.Chunk.BuildSystem != "autotools" {
		t.Errorf("max-jobs %d build system %q, want 2 autotools", libpng.Chunk.MaxJobs, libpng.Chunk.BuildSystem)
	}
	zlib := g.Step("zlib")
	if got := phase(zlib, "install"); !slices.Equal(got, []string{`make DESTDIR="$DESTDIR" install`}) {
		t.Errorf("zlib install = %q, want autotools' default", got)
	}
	stage1 := g.Step("stage1")
	for _, p := range stage1.Chunk.Phases {
		if len(p.Commands) != 0 {
			t.Errorf("manual chunk stage1 has %s commands %q, want none", p.Name, p.Commands)
		}
	}
	cc := g.Step("cc")
	if cc.Chunk.Prefix != "/tools" || cc.Chunk.BuildMode != "bootstrap" || zlib.Chunk.Prefix != "/usr" || zlib.Chunk.BuildMode != "staging" {
		t.Errorf("prefix/mode: cc %s %s, zlib %s %s; want /tools bootstrap, /usr staging",
			cc.Chunk.Prefix, cc.Chunk.BuildMode, zlib.Chunk.Prefix, zlib.Chunk.BuildMode)
	}
}

func names2(phases []definitions.Phase) []string {
	out := make([]string, len(phases))
	for i, p := range phases {
		out[i] = p.Name
	}
	return out
}

func TestSplitRulesProductsOverridesAndSystemFilter(t *testing.T) {
	g := mustResolve(t, baseTree())
	libpng := g.Step("libpng").Chunk
	wantArts := []string{"libpng-tools", "libpng-bins", "libpng-libs", "libpng-devel", "libpng-doc", "libpng-locale", "libpng-misc"}
	if !slices.Equal(libpng.Artifacts, wantArts) {
		t.Errorf("libpng artifacts = %v, want %v", libpng.Artifacts, wantArts)
	}
	for path, want := range map[string]string{
		"usr/bin/pngfix":          "libpng-tools", // the chunk's products come first
		"usr/bin/other":           "libpng-bins",
		"usr/lib/libpng16.so.16":  "libpng-libs",
		"usr/include/png.h":       "libpng-devel",
		"usr/lib/pkgconfig/x.pc":  "libpng-devel",
		"usr/share/man/man1/x.1":  "libpng-doc",
		"etc/png.conf":            "libpng-misc",
		"usr/lib/libpng16.so.16x": "libpng-misc", // anchored at the end
	} {
		if got, ok := splitrule.Match(libpng.SplitRules, path); !ok || got != want {
			t.Errorf("%s split into %q, want %q", path, got, want)
		}
	}
	core := g.Step("core").Stratum
	members := map[string][]string{}
	for _, a := range core.Artifacts {
		for _, m := range a.Members {
			members[a.Name] = append(members[a.Name], m.Artifact)
		}
	}
	if !slices.Contains(members["core-devel"], "libpng-tools") || slices.Contains(members["core-runtime"], "libpng-tools") {
		t.Errorf("libpng-tools should be moved to core-devel by the chunk's artifacts map; got %v", members)
	}
	if !slices.Contains(members["core-devel"], "zlib-devel") || !slices.Contains(members["core-runtime"], "zlib-libs") {
		t.Errorf("default stratum rules not applied: %v", members)
	}
	sys := g.Systems[0].System
	if got := sys.Strata[1].Artifacts; !slices.Equal(got, []string{"core-runtime"}) {
		t.Errorf("system takes %v of core, want [core-runtime]", got)
	}
	if got := sys.Strata[2].Artifacts; !slices.Equal(got, []string{"tools-devel", "tools-runtime"}) {
		t.Errorf("system takes %v of tools, want all of it", got)
	}
	if got := g.Step("libpng").Chunk.SystemIntegration["libpng-libs"]["00-ldconfig"]; !slices.Equal(got, []string{"ldconfig"}) {
		t.Errorf("system-integration = %v", g.Step("libpng").Chunk.SystemIntegration)
	}
}

func TestDefaultsWithAnchorsAndMergeKeys(t *testing.T) {
	defaults := `build-systems:
  base: &base
    configure-commands: &conf
    - ./configure
    build-commands:
    - make
    install-commands:
    - make install
    strip-commands: []
  derived:
    <<: *base
    build-commands:
    - make -j1
  manual:
    configure-commands: *conf
  autotools: *base
  cmake: *base
split-rules:
  chunk:
  - artifact: -libs
    include: [ 'usr/lib/.*' ]
  - artifact: -everything
    include: [ '.*' ]
`
	fsys := with(baseTree(), map[string]*string{
		"DEFAULTS":                        ptr(defaults),
		"strata/build-essential/cc.morph": ptr("name: cc\nkind: chunk\nbuild-system: derived\n"),
	})
	g := mustResolve(t, fsys)
	cc := g.Step("cc")
	if got := phase(cc, "configure"); !slices.Equal(got, []string{"./configure"}) {
		t.Errorf("configure via merge key = %q, want [./configure]", got)
	}
	if got := phase(cc, "build"); !slices.Equal(got, []string{"make -j1"}) {
		t.Errorf("build = %q, want the explicit key to beat the merged one", got)
	}
	if got := phase(g.Step("stage1"), "configure"); !slices.Equal(got, []string{"./configure"}) {
		t.Errorf("manual configure via alias = %q", got)
	}
	if got := cc.Chunk.Artifacts; !slices.Equal(got, []string{"cc-libs", "cc-everything"}) {
		t.Errorf("chunk split rules from DEFAULTS = %v, want [cc-libs cc-everything]", got)
	}
	// DEFAULTS left out the stratum rules, so the built-in ones apply.
	if got := g.Step("core").Stratum.Artifacts; len(got) != 2 || got[0].Name != "core-devel" {
		t.Errorf("stratum artifacts = %v, want built-in devel/runtime", got)
	}
}

func TestBuiltinDefaultsKnowTheCommonBuildSystems(t *testing.T) {
	defs, err := definitions.Open(baseTree())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"manual", "autotools", "python-distutils", "python3-distutils", "cpan", "module-build", "cmake", "qmake"} {
		bs, ok := defs.Defaults.BuildSystems[name]
		if !ok {
			t.Errorf("built-in build system %q missing", name)
			continue
		}
		if name != "manual" && len(bs.Commands["install"]) == 0 {
			t.Errorf("built-in build system %q has no install commands", name)
		}
	}
	if len(defs.Defaults.BuildSystems["autotools"].Commands["strip"]) != 1 || defs.Defaults.BuildSystems["cmake"].Commands["strip"][0] != defs.Defaults.BuildSystems["autotools"].Commands["strip"][0] {
		t.Error("the strip command shared through an anchor differs between build systems")
	}
}

func TestArchAliasIsNormalized(t *testing.T) {
	sys := strings.Replace(string(baseTree()["systems/base.morph"].Data), "arch: x86_64", "arch: armv7", 1)
	g := mustResolve(t, with(baseTree(), map[string]*string{"systems/base.morph": &sys}))
	if g.Arch != "armv7l" {
		t.Errorf("arch = %q, want armv7 read as armv7l", g.Arch)
	}
}

// countingResolver resolves every ref to a commit derived from it and counts
// how often it is asked, to prove each (repo, ref) is resolved once.
type countingResolver struct{ calls map[string]int }

func (c *countingResolver) ResolveRef(_ context.Context, repo, ref string) (string, error) {
	c.calls[repo+"@"+ref]++
	if ref == "missing" {
		return "", errors.New("no such branch")
	}
	return strings.Repeat(fmt.Sprintf("%x", len(repo)%16), 40), nil
}

func TestBranchRefsAreResolvedOnceAndRecorded(t *testing.T) {
	core := strings.ReplaceAll(string(baseTree()["strata/core.morph"].Data), "3333333333333333333333333333333333333333", "master")
	core = strings.ReplaceAll(core, "upstream:libpng", "upstream:zlib")
	core = strings.ReplaceAll(core, "4444444444444444444444444444444444444444", "master")
	fsys := with(baseTree(), map[string]*string{"strata/core.morph": &core})
	defs, err := definitions.Open(fsys)
	if err != nil {
		t.Fatal(err)
	}
	r := &countingResolver{calls: map[string]int{}}
	g, err := defs.Resolve(context.Background(), "systems/base.morph", r)
	if err != nil {
		t.Fatal(err)
	}
	if r.calls["upstream:zlib@master"] != 1 || len(r.calls) != 1 {
		t.Errorf("resolver calls = %v, want upstream:zlib@master exactly once", r.calls)
	}
	if c := g.Step("libpng").Chunk; !definitions.IsCommit(c.Commit) || c.Ref != "master" {
		t.Errorf("libpng commit %q ref %q, want a resolved commit and the ref kept", c.Commit, c.Ref)
	}

	bad := strings.ReplaceAll(core, "ref: master", "ref: missing")
	_, err = resolve(t, with(fsys, map[string]*string{"strata/core.morph": &bad}), "systems/base.morph")
	if err == nil {
		// CommitsOnly refuses any branch; checked separately below.
		t.Fatal("resolving an unknown branch offline succeeded")
	}
	_, err = defs.Resolve(context.Background(), "systems/base.morph", definitions.CommitsOnly{})
	var de *definitions.Error
	if !errors.As(err, &de) || de.File != "strata/core.morph" || !strings.Contains(de.Msg, `chunk "zlib"`) || !strings.Contains(de.Msg, "cannot be resolved offline") {
		t.Errorf("offline branch ref error = %v, want one naming strata/core.morph and chunk zlib", err)
	}
}

func TestRepoAliases(t *testing.T) {
	a := definitions.NewRepoAliases("http://127.0.0.1:8080/git/")
	if err := a.Set("example=https://git.example.org/%s.git#ssh://git@git.example.org/%s.git"); err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]string{
		"upstream:zlib":                   "http://127.0.0.1:8080/git/upstream/zlib",
		"baserock:baserock/definitions":   "http://127.0.0.1:8080/git/baserock/baserock/definitions",
		"example:tools/app":               "https://git.example.org/tools/app.git",
		"https://git.example.org/app.git": "https://git.example.org/app.git",
		"/srv/git/app.git":                "/srv/git/app.git",
	} {
		if got, err := a.Resolve(repo); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", repo, got, err, want)
		}
	}
	for _, def := range []string{"noequals", "x=no-placeholder", "x=%s/%s", "=%s", "a:b=%s"} {
		if err := a.Set(def); err == nil {
			t.Errorf("Set(%q) accepted a malformed alias", def)
		}
	}
	for _, repo := range []string{"zlib", "upstream:", "upstream:../etc"} {
		if _, err := a.Resolve(repo); err == nil {
			t.Errorf("Resolve(%q) accepted a bad repo", repo)
		}
	}
}

func TestResolveReposNamesTheChunkWithAnUnknownPrefix(t *testing.T) {
	core := strings.Replace(string(baseTree()["strata/core.morph"].Data), "upstream:libpng", "mystery:libpng", 1)
	g := mustResolve(t, with(baseTree(), map[string]*string{"strata/core.morph": &core}))
	urls, err := g.ResolveRepos(definitions.NewRepoAliases("http://trove/git"))
	var de *definitions.Error
	if !errors.As(err, &de) || de.File != "strata/core.morph" || de.Line != 12 || !strings.Contains(de.Msg, `chunk "libpng"`) || !strings.Contains(de.Msg, `unknown repo alias prefix "mystery"`) {
		t.Fatalf("ResolveRepos error = %v (urls %v), want strata/core.morph:12 naming chunk libpng and the prefix", err, urls)
	}
	urls, err = mustResolve(t, baseTree()).ResolveRepos(definitions.NewRepoAliases("http://trove/git"))
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) != 5 {
		t.Errorf("resolved %d chunk URLs, want 5", len(urls))
	}
}
