package definitions_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"distbuild/definitions"
	"distbuild/definitions/definitionstest"
	"distbuild/digest"
)

// resolveCorpus resolves one morph of the corpus, branch refs included.
func resolveCorpus(t *testing.T, fsys fstest.MapFS, morph string) *definitions.Graph {
	t.Helper()
	defs, err := definitions.Open(fsys)
	if err != nil {
		t.Fatal(err)
	}
	g, err := defs.Resolve(context.Background(), morph, &countingResolver{calls: map[string]int{}})
	if err != nil {
		t.Fatalf("resolving %s: %v", morph, err)
	}
	return g
}

func TestCorpusClusterResolvesToTheExactGraph(t *testing.T) {
	for _, version := range []int{7, 8} {
		c := definitionstest.NewCorpus(version)
		g := resolveCorpus(t, c.FS, c.Cluster)
		want := [][2]string{
			{"stage1-binutils", ""}, {"stage1-gcc", "stage1-binutils"}, {"fhs-dirs", "stage1-gcc"},
			{"build-essential", "stage1-binutils stage1-gcc fhs-dirs"},
			{"groff", "build-essential"}, {"openssl", "build-essential"}, {"systemd", "openssl build-essential"}, {"foundation-tests", "build-essential"},
			{"foundation", "groff openssl systemd foundation-tests"},
			{"cross-binutils", "groff build-essential"},
			{"cross-bootstrap", "groff cross-binutils"},
			{"groff@docs", "foundation"},
			{"docs", "groff@docs"},
			{"ruby", "foundation"}, {"bundler", "ruby foundation"},
			{"ruby.stratum", "ruby bundler"},
			{"python-six", "foundation"}, {"pyyaml", "foundation"}, {"perl-json", "foundation"}, {"perl-module-build", "foundation"}, {"cmake", "foundation"}, {"qtbase", "cmake foundation"},
			{"languages", "python-six pyyaml perl-json perl-module-build cmake qtbase"},
			{"devel-system-x86_64", "build-essential foundation cross-bootstrap docs ruby.stratum languages"},
			{"initramfs-x86_64", "build-essential foundation"},
			{"ruby.system", "build-essential foundation ruby.stratum"},
		}
		var got [][2]string
		for _, s := range g.Steps {
			got = append(got, [2]string{s.Name, strings.Join(names(s.Deps), " ")})
		}
		if !slices.Equal(got, want) {
			t.Errorf("version %d: steps and direct dependencies:\n got %v\nwant %v", version, got, want)
		}
		if got := names(g.Systems); !slices.Equal(got, []string{"devel-system-x86_64", "initramfs-x86_64", "ruby.system"}) {
			t.Errorf("version %d: systems = %v", version, got)
		}
	}
}

func TestCorpusDependencyClosures(t *testing.T) {
	c := definitionstest.NewCorpus(8)
	g := resolveCorpus(t, c.FS, c.Cluster)
	be := []string{"stage1-binutils", "stage1-gcc", "fhs-dirs"}
	foundation := append(slices.Clone(be), "groff", "openssl", "systemd", "foundation-tests")
	for step, want := range map[string][]string{
		"stage1-gcc":       {"stage1-binutils"},
		"cross-binutils":   append(slices.Clone(be), "groff"),
		"groff@docs":       foundation,
		"bundler":          append(slices.Clone(foundation), "ruby"),
		"qtbase":           append(slices.Clone(foundation), "cmake"),
		"ruby.system":      append(slices.Clone(foundation), "ruby", "bundler"),
		"initramfs-x86_64": foundation,
	} {
		if got := names(g.Staging(g.Step(step))); !slices.Equal(got, want) {
			t.Errorf("%s needs %v, want %v", step, got, want)
		}
	}
}

func TestCorpusStepsShareCacheKeysExactlyWhereTheWorkIsTheSame(t *testing.T) {
	c := definitionstest.NewCorpus(8)
	g := resolveCorpus(t, c.FS, c.Cluster)
	if cb := g.Step("cross-bootstrap").Stratum.Chunks; cb[0] != g.Step("groff") {
		t.Errorf("cross-bootstrap's groff is %s, want foundation's groff step: built the same way, it is the same work", cb[0].Name)
	}
	if g.Step("groff@docs").CacheKey == g.Step("groff").CacheKey {
		t.Error("docs' groff, built on foundation, shares a key with foundation's")
	}
	keys := map[digest.CacheKey]string{}
	for _, s := range g.Steps {
		if prev, dup := keys[s.CacheKey]; dup {
			t.Errorf("%s and %s are two steps with one cache key", prev, s.Name)
		}
		keys[s.CacheKey] = s.Name
	}
	v7 := resolveCorpus(t, definitionstest.NewCorpus(7).FS, c.Cluster)
	for _, sys := range []string{c.DevelSystem, c.InitramfsSystem, c.RubySystem} {
		for _, s := range resolveCorpus(t, c.FS, sys).Steps {
			if in := g.Step(s.Name); in == nil || in.CacheKey != s.CacheKey {
				t.Errorf("%s of %s: resolved alone it is not the same step (same name and key) as in the cluster", s.Name, sys)
			}
		}
	}
	for i, s := range v7.Steps {
		if s.Name != g.Steps[i].Name || s.CacheKey != g.Steps[i].CacheKey {
			t.Errorf("step %d is %s %s in version 7 but %s %s in version 8", i, s.Name, s.CacheKey[:12], g.Steps[i].Name, g.Steps[i].CacheKey[:12])
		}
	}
}

func TestCorpusFeaturesReachTheGraph(t *testing.T) {
	c := definitionstest.NewCorpus(8)
	g := resolveCorpus(t, c.FS, c.Cluster)
	wantWarnings := []string{
		`strata/foundation/systemd.morph:16: stratum "foundation": chunk "systemd": system-integration names "ModemManager-misc"`,
		`systems/initramfs-x86_64.morph:12: system "initramfs-x86_64": stratum "foundation" has no artifact "foundation-core-openssl"`,
	}
	if len(g.Warnings) != len(wantWarnings) {
		t.Fatalf("warnings = %v, want %d", g.Warnings, len(wantWarnings))
	}
	for i, w := range wantWarnings {
		if !strings.HasPrefix(g.Warnings[i].Error(), w) {
			t.Errorf("warning %d = %v, want %s...", i, g.Warnings[i], w)
		}
	}
	buildSystems := map[string]string{}
	for _, s := range g.Steps {
		if s.Chunk != nil {
			buildSystems[s.Chunk.BuildSystem] = s.Name
		}
	}
	for _, bs := range []string{"manual", "autotools", "python-distutils", "python3-distutils", "cpan", "module-build", "cmake", "qmake"} {
		if buildSystems[bs] == "" {
			t.Errorf("no chunk of the corpus uses build system %s", bs)
		}
	}
	if got := phase(g.Step("pyyaml"), "strip"); len(got) != 1 || !strings.HasPrefix(got[0], "find ") {
		t.Errorf("pyyaml strip = %q, want the strip command merged in from python-distutils", got)
	}
	if got := phase(g.Step("qtbase"), "build"); !slices.Equal(got, []string{"make"}) {
		t.Errorf("qtbase build = %q, want make merged in from autotools", got)
	}
	modes := map[string]definitions.BuildMode{"stage1-gcc": definitions.BuildBootstrap, "foundation-tests": definitions.BuildTest, "groff": definitions.BuildStaging}
	for step, mode := range modes {
		if got := g.Step(step).Chunk.BuildMode; got != mode {
			t.Errorf("%s build-mode %s, want %s", step, got, mode)
		}
	}
	if g.Step("stage1-gcc").Chunk.MaxJobs != 4 || g.Step("cmake").Chunk.MaxJobs != 2 || g.Step("openssl").Chunk.MaxJobs != 1 {
		t.Error("max-jobs from a chunk morph or a chunk spec was lost")
	}
	if devs := g.Step("fhs-dirs").Chunk.Devices; len(devs) != 2 || devs[0].Permissions != 0o600 || devs[1].Permissions != 0o666 {
		t.Errorf("fhs-dirs devices = %+v", devs)
	}
	if si := g.Step("fhs-dirs").Chunk.SystemIntegration["fhs-dirs-misc"]; len(si) != 2 || si["00-passwd"] == nil || si["10-shadow"] == nil {
		t.Errorf("fhs-dirs system-integration = %v, want the two numbered steps", si)
	}
	if subs := g.Step("ruby").Chunk.Submodules; len(subs) != 1 || subs[0].Path != "ext/json" {
		t.Errorf("ruby submodules = %v", subs)
	}
	if b := g.Step("bundler").Chunk; b.Ref != c.BranchRef || !definitions.IsCommit(b.Commit) {
		t.Errorf("bundler ref %q commit %q, want the branch resolved to a commit", b.Ref, b.Commit)
	}
	members := map[string][]string{}
	for _, a := range g.Step("ruby.stratum").Stratum.Artifacts {
		for _, m := range a.Members {
			members[a.Name] = append(members[a.Name], m.Artifact)
		}
	}
	if !slices.Contains(members["ruby-devel"], "bundler-misc") || slices.Contains(members["ruby-runtime"], "bundler-misc") {
		t.Errorf("ruby stratum artifacts %v: bundler-misc should be mapped to ruby-devel", members)
	}
	if got := g.Step("initramfs-x86_64").System.Strata[1].Artifacts; !slices.Equal(got, []string{"foundation-runtime", "foundation-openssl"}) {
		t.Errorf("initramfs takes %v of foundation, want the two artifacts that exist", got)
	}
}

func TestCorpusOfflineSaysABranchRefNeedsAPinnedCommit(t *testing.T) {
	c := definitionstest.NewCorpus(8)
	defs, err := definitions.Open(c.FS)
	if err != nil {
		t.Fatal(err)
	}
	_, err = defs.Resolve(context.Background(), c.Cluster, definitions.CommitsOnly{})
	var de *definitions.Error
	if !errors.As(err, &de) || de.File != "strata/ruby.morph" || de.Line != 14 || !strings.Contains(de.Msg, `chunk "bundler"`) || !strings.Contains(de.Msg, "pin it to a 40-character commit") {
		t.Errorf("got %v, want strata/ruby.morph:14 saying bundler's branch needs a pinned commit", err)
	}
}

func TestLintReportsEveryMorphsProblemsOnceWithFileAndLine(t *testing.T) {
	c := definitionstest.NewCorpus(8)
	if got := definitions.Lint(c.FS, nil); len(got) != 2 || !got[0].Warning || !got[1].Warning {
		t.Errorf("lint of the corpus = %v, want its two warnings", got)
	}
	fsys := with(c.FS, map[string]*string{
		// Used by every system: reported once, not once per system.
		"strata/build-essential/fhs-dirs.morph": ptr("name: fhs-dirs\nkind: chunk\nmax-jobs: many\n"),
		// Used by no system: found only by checking every morph.
		"strata/unused/x.morph": ptr("name: x\nkind: chunk\nbuld-system: manual\n"),
	})
	var got []string
	for _, f := range definitions.Lint(fsys, nil) {
		got = append(got, f.Error.Error())
	}
	want := []string{
		`strata/build-essential/fhs-dirs.morph:3: chunk "fhs-dirs": max-jobs must be an integer, not "many"`,
		`strata/unused/x.morph:3: chunk: unknown field "buld-system"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("lint found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A system whose resolution stops at an error cannot be checked for
	// warnings beyond it; the error is reported.
	if got := definitions.Lint(fsys, []string{c.RubySystem}); len(got) != 1 || got[0].Line != 3 {
		t.Errorf("lint of one system = %v, want the error of the chunk morph it uses", got)
	}
	if got := definitions.Lint(c.FS, []string{c.InitramfsSystem}); len(got) != 2 {
		t.Errorf("lint of the initramfs system = %v, want the two warnings it meets", got)
	}
}

func TestCorpusMultiArchClusterBuildsEveryStepForEachArchitectureThatNeedsIt(t *testing.T) {
	for _, version := range []int{7, 8} {
		c := definitionstest.NewCorpus(version)
		g := resolveCorpus(t, c.FS, c.MultiArchCluster)
		if g.Arch != "" || !slices.Equal(g.Archs, []string{"x86_64", "armv7lhf", "armv8l64"}) {
			t.Errorf("version %d: arch %q, archs %v; want x86_64, armv7lhf and armv8l64 in cluster order", version, g.Arch, g.Archs)
		}
		want := [][3]string{
			{"stage1-binutils", "x86_64", ""}, {"stage1-gcc", "x86_64", "stage1-binutils"}, {"fhs-dirs", "x86_64", "stage1-gcc"},
			{"build-essential", "x86_64", "stage1-binutils stage1-gcc fhs-dirs"},
			{"groff", "x86_64", "build-essential"}, {"openssl", "x86_64", "build-essential"}, {"systemd", "x86_64", "openssl build-essential"}, {"foundation-tests", "x86_64", "build-essential"},
			{"foundation", "x86_64", "groff openssl systemd foundation-tests"},
			{"cross-binutils", "x86_64", "groff build-essential"},
			{"cross-bootstrap", "x86_64", "groff cross-binutils"},
			{"groff@docs", "x86_64", "foundation"},
			{"docs", "x86_64", "groff@docs"},
			{"ruby", "x86_64", "foundation"}, {"bundler", "x86_64", "ruby foundation"},
			{"ruby.stratum", "x86_64", "ruby bundler"},
			{"python-six", "x86_64", "foundation"}, {"pyyaml", "x86_64", "foundation"}, {"perl-json", "x86_64", "foundation"}, {"perl-module-build", "x86_64", "foundation"}, {"cmake", "x86_64", "foundation"}, {"qtbase", "x86_64", "cmake foundation"},
			{"languages", "x86_64", "python-six pyyaml perl-json perl-module-build cmake qtbase"},
			{"devel-system-x86_64", "x86_64", "build-essential foundation cross-bootstrap docs ruby.stratum languages"},
			{"initramfs-x86_64", "x86_64", "build-essential foundation"},

			{"stage1-binutils@armv7lhf", "armv7lhf", ""}, {"stage1-gcc@armv7lhf", "armv7lhf", "stage1-binutils@armv7lhf"}, {"fhs-dirs@armv7lhf", "armv7lhf", "stage1-gcc@armv7lhf"},
			{"build-essential@armv7lhf", "armv7lhf", "stage1-binutils@armv7lhf stage1-gcc@armv7lhf fhs-dirs@armv7lhf"},
			{"groff@armv7lhf", "armv7lhf", "build-essential@armv7lhf"}, {"openssl@armv7lhf", "armv7lhf", "build-essential@armv7lhf"},
			{"systemd@armv7lhf", "armv7lhf", "openssl@armv7lhf build-essential@armv7lhf"}, {"foundation-tests@armv7lhf", "armv7lhf", "build-essential@armv7lhf"},
			{"foundation@armv7lhf", "armv7lhf", "groff@armv7lhf openssl@armv7lhf systemd@armv7lhf foundation-tests@armv7lhf"},
			{"cross-binutils@armv7lhf", "armv7lhf", "groff@armv7lhf build-essential@armv7lhf"},
			{"cross-bootstrap@armv7lhf", "armv7lhf", "groff@armv7lhf cross-binutils@armv7lhf"},
			{"groff@docs@armv7lhf", "armv7lhf", "foundation@armv7lhf"},
			{"docs@armv7lhf", "armv7lhf", "groff@docs@armv7lhf"},
			{"ruby@armv7lhf", "armv7lhf", "foundation@armv7lhf"}, {"bundler@armv7lhf", "armv7lhf", "ruby@armv7lhf foundation@armv7lhf"},
			{"ruby.stratum@armv7lhf", "armv7lhf", "ruby@armv7lhf bundler@armv7lhf"},
			{"linux-armv7-highbank", "armv7lhf", "build-essential@armv7lhf"},
			{"bsp-armv7-highbank", "armv7lhf", "linux-armv7-highbank"},
			{"devel-system-armv7lhf", "armv7lhf", "build-essential@armv7lhf foundation@armv7lhf cross-bootstrap@armv7lhf docs@armv7lhf ruby.stratum@armv7lhf bsp-armv7-highbank"},

			{"stage1-binutils@armv8l64", "armv8l64", ""}, {"stage1-gcc@armv8l64", "armv8l64", "stage1-binutils@armv8l64"}, {"fhs-dirs@armv8l64", "armv8l64", "stage1-gcc@armv8l64"},
			{"build-essential@armv8l64", "armv8l64", "stage1-binutils@armv8l64 stage1-gcc@armv8l64 fhs-dirs@armv8l64"},
			{"minimal-system-armv8l64", "armv8l64", "build-essential@armv8l64"},
		}
		var got [][3]string
		for _, s := range g.Steps {
			got = append(got, [3]string{s.Name, s.Arch, strings.Join(names(s.Deps), " ")})
		}
		if !slices.Equal(got, want) {
			t.Errorf("version %d: steps, architectures and direct dependencies:\n got %v\nwant %v", version, got, want)
		}
		if got := names(g.Systems); !slices.Equal(got, []string{"devel-system-x86_64", "initramfs-x86_64", "devel-system-armv7lhf", "minimal-system-armv8l64"}) {
			t.Errorf("version %d: systems = %v", version, got)
		}
	}
}

func TestCorpusMultiArchClusterSharesStepsOnlyWithinAnArchitecture(t *testing.T) {
	c := definitionstest.NewCorpus(8)
	g := resolveCorpus(t, c.FS, c.MultiArchCluster)
	keys := map[digest.CacheKey]*definitions.Step{}
	for _, s := range g.Steps {
		if prev, dup := keys[s.CacheKey]; dup {
			t.Errorf("%s (%s) and %s (%s) are two steps with one cache key", prev.Name, prev.Arch, s.Name, s.Arch)
		}
		keys[s.CacheKey] = s
	}
	// Within armv7lhf, cross-bootstrap's groff is foundation's, as in
	// x86_64.
	if cb := g.Step("cross-bootstrap@armv7lhf").Stratum.Chunks; cb[0] != g.Step("groff@armv7lhf") {
		t.Errorf("armv7lhf's cross-bootstrap holds %s, want armv7lhf's foundation groff", cb[0].Name)
	}
	// Every step is exactly the step of the same key built by resolving
	// its system alone; its name is that step's, with @<arch> when an
	// architecture the cluster lists earlier has that name.
	first := map[string]string{}
	for _, sys := range []string{c.DevelSystem, c.InitramfsSystem, c.ArmSystem, c.Arm64System} {
		for _, s := range resolveCorpus(t, c.FS, sys).Steps {
			name := s.Name
			if arch, ok := first[name]; ok && arch != s.Arch {
				name += "@" + s.Arch
			} else if !ok {
				first[name] = s.Arch
			}
			if in := g.Step(name); in == nil || in.CacheKey != s.CacheKey || in.Arch != s.Arch {
				t.Errorf("%s of %s (%s): not the cluster's step %s", s.Name, sys, s.Arch, name)
			}
		}
	}
	// The x86_64 steps are those of the single-architecture cluster.
	single := resolveCorpus(t, c.FS, c.Cluster)
	for _, s := range single.Steps {
		if s.Kind == definitions.KindSystem {
			continue
		}
		if in := g.Step(s.Name); in == nil || in.CacheKey != s.CacheKey {
			t.Errorf("%s of the x86_64 cluster is not the same step in the multi-arch cluster", s.Name)
		}
	}
	// A branch ref is resolved once per build, whatever the architectures.
	if a, b := g.Step("bundler").Chunk.Commit, g.Step("bundler@armv7lhf").Chunk.Commit; a != b {
		t.Errorf("bundler is commit %s for x86_64 but %s for armv7lhf", a, b)
	}
	if len(g.Warnings) != 2 {
		t.Errorf("warnings = %v, want the corpus's two, each once though foundation is built for two architectures", g.Warnings)
	}
}
