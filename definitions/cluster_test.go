package definitions_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"distbuild/definitions"
	"distbuild/digest"
)

const clusterMorph = `name: release
kind: cluster
description: Deploy both systems.
systems:
- morph: systems/base.morph
  deploy-defaults:
    HOSTNAME: base
  deploy:
    base-image:
      type: extensions/rawdisk
      location: base.img
      DISK_SIZE: 4G
  subsystems:
  - morph: systems/small.morph
    deploy:
      small-tarball:
        type: extensions/tar
        location: small.tar
- morph: systems/base.morph
  deploy:
    base-again:
      type: extensions/tar
`

const smallSystem = `name: small-system
kind: system
arch: x86_64
strata:
- morph: strata/build-essential.morph
- morph: strata/core.morph
`

func clusterTree(t *testing.T, edits ...edit) (*definitions.Graph, error) {
	t.Helper()
	base := []edit{{file: "clusters/release.morph", new: clusterMorph}, {file: "systems/small.morph", new: smallSystem}}
	return resolve(t, apply(t, append(base, edits...)), "clusters/release.morph")
}

func TestAClusterIsOneGraphOfEverySystemItListsWithSharedStepsOnce(t *testing.T) {
	g, err := clusterTree(t)
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "release" || !g.Cluster || g.Arch != "x86_64" {
		t.Errorf("graph %q cluster=%v arch %q, want the release cluster for x86_64", g.Name, g.Cluster, g.Arch)
	}
	if got := names(g.Systems); !slices.Equal(got, []string{"base-system", "small-system"}) {
		t.Errorf("systems = %v, want base-system then its subsystem small-system, each once", got)
	}
	want := []string{"stage1", "cc", "build-essential", "zlib", "libpng", "core", "app", "tools", "base-system", "small-system"}
	if got := names(g.Steps); !slices.Equal(got, want) {
		t.Errorf("steps = %v\nwant    %v", got, want)
	}
	if got := names(g.Step("small-system").Deps); !slices.Equal(got, []string{"build-essential", "core"}) {
		t.Errorf("small-system depends on %v", got)
	}
	alone := mustResolve(t, baseTree())
	if g.Step("base-system").CacheKey != alone.Systems[0].CacheKey {
		t.Error("base-system's cache key differs when it is built as part of a cluster")
	}
}

func TestAClusterOfTwoArchitecturesBuildsEachSystemForItsOwn(t *testing.T) {
	g, err := clusterTree(t, edit{file: "systems/small.morph", old: "arch: x86_64", new: "arch: armv7lhf"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Arch != "" || !slices.Equal(g.Archs, []string{"x86_64", "armv7lhf"}) {
		t.Errorf("graph arch %q, archs %v; want no one arch, and x86_64 then armv7lhf", g.Arch, g.Archs)
	}
	if got := names(g.Systems); !slices.Equal(got, []string{"base-system", "small-system"}) {
		t.Errorf("systems = %v", got)
	}
	x86 := []string{"stage1", "cc", "build-essential", "zlib", "libpng", "core", "app", "tools", "base-system"}
	arm := []string{"stage1@armv7lhf", "cc@armv7lhf", "build-essential@armv7lhf", "zlib@armv7lhf", "libpng@armv7lhf", "core@armv7lhf", "small-system"}
	if got := names(g.Steps); !slices.Equal(got, slices.Concat(x86, arm)) {
		t.Fatalf("steps = %v\nwant    %v", got, slices.Concat(x86, arm))
	}
	keys := map[digest.CacheKey]string{}
	for i, s := range g.Steps {
		if want := map[bool]string{true: "x86_64", false: "armv7lhf"}[i < len(x86)]; s.Arch != want {
			t.Errorf("%s is built for %q, want %s", s.Name, s.Arch, want)
		}
		for _, d := range s.Deps {
			if d.Arch != s.Arch {
				t.Errorf("%s (%s) depends on %s (%s): no step is shared across architectures", s.Name, s.Arch, d.Name, d.Arch)
			}
		}
		if prev, dup := keys[s.CacheKey]; dup {
			t.Errorf("%s and %s share cache key %s", prev, s.Name, s.CacheKey.String()[:12])
		}
		keys[s.CacheKey] = s.Name
	}
	if z, za := g.Step("zlib"), g.Step("zlib@armv7lhf"); za.DefinedName != "zlib" || za.Chunk.Commit != z.Chunk.Commit || za.CacheKey == z.CacheKey {
		t.Errorf("zlib@armv7lhf is %q from %s with key %s; want zlib from the same commit under another key than %s", za.DefinedName, za.Chunk.Commit, za.CacheKey[:12], z.CacheKey[:12])
	}
	// Each architecture's steps are those of its systems built alone:
	// same keys, and the same names but for the @arch an earlier
	// architecture's name adds.
	armSmall := apply(t, []edit{{file: "systems/small.morph", new: strings.Replace(smallSystem, "x86_64", "armv7lhf", 1)}})
	for _, system := range []string{"systems/base.morph", "systems/small.morph"} {
		a, err := resolve(t, armSmall, system)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range a.Steps {
			in := g.Step(s.Name)
			if s.Arch == "armv7lhf" && slices.Contains(x86, s.Name) {
				in = g.Step(s.Name + "@armv7lhf")
			}
			if in == nil || in.CacheKey != s.CacheKey || in.Arch != s.Arch {
				t.Errorf("%s %s built alone is not a step of the cluster with key %s", s.Arch, s.Name, s.CacheKey[:12])
			}
		}
	}
}

func TestANameTakenLiterallyInAnotherArchitectureIsAnError(t *testing.T) {
	_, err := clusterTree(t,
		edit{file: "systems/small.morph", new: strings.Replace(smallSystem, "x86_64", "armv7lhf", 1) + "- morph: strata/tools.morph\n"},
		edit{file: "strata/odd.morph", new: "name: odd\nkind: stratum\nbuild-depends:\n- morph: strata/core.morph\nchunks:\n- name: app@armv7lhf\n  repo: upstream:odd\n  ref: 7777777777777777777777777777777777777777\n  build-system: manual\n"},
		edit{file: "systems/base.morph", old: "- name: tools\n", new: "- morph: strata/odd.morph\n- name: tools\n"})
	var de *definitions.Error
	if !errors.As(err, &de) || de.File != "strata/tools.morph" || de.Line != 7 ||
		!strings.Contains(de.Msg, `chunk "app" built for armv7lhf would be named "app@armv7lhf", which is the name of the chunk defined in strata/odd.morph:6`) {
		t.Errorf("got %v, want strata/tools.morph:7 saying armv7lhf's app cannot be named like odd's chunk", err)
	}
}

func TestBadClustersAreReportedWithFileAndLine(t *testing.T) {
	const cl = "clusters/release.morph"
	for _, tc := range []struct {
		name     string
		edit     edit
		wantFile string
		wantLine int
		wantMsg  string
	}{
		{"deploy settings not a mapping", edit{file: cl, old: "    small-tarball:\n        type: extensions/tar\n        location: small.tar\n", new: "    small-tarball: small.tar\n"},
			cl, 16, `deploy: small-tarball must be a mapping, not "small.tar"`},
		{"deploy-defaults not a mapping", edit{file: cl, old: "  deploy-defaults:\n    HOSTNAME: base\n", new: "  deploy-defaults: [HOSTNAME]\n"},
			cl, 6, "deploy-defaults must be a mapping, not a list"},
		{"unknown field in a system entry", edit{file: cl, old: "  subsystems:", new: "  subsytems:"},
			cl, 13, `unknown field "subsytems"`},
		{"missing system morph", edit{file: cl, old: "morph: systems/small.morph", new: "morph: systems/smal.morph"},
			cl, 14, `system morph "systems/smal.morph": file not found`},
		{"stratum listed as a system", edit{file: cl, old: "morph: systems/small.morph", new: "morph: strata/core.morph"},
			"strata/core.morph", 2, "kind is stratum, but it is used as a system"},
		{"no systems", edit{file: cl, new: "name: release\nkind: cluster\nsystems: []\n"},
			cl, 3, "must list at least one system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clusterTree(t, tc.edit)
			var de *definitions.Error
			if !errors.As(err, &de) || de.File != tc.wantFile || de.Line != tc.wantLine || !strings.Contains(de.Msg, tc.wantMsg) {
				t.Errorf("got  %v\nwant %s:%d: ...%s...", err, tc.wantFile, tc.wantLine, tc.wantMsg)
			}
		})
	}
}

func TestOnlySystemsAndClustersCanBeResolved(t *testing.T) {
	_, err := resolve(t, baseTree(), "strata/core.morph")
	var de *definitions.Error
	if !errors.As(err, &de) || de.File != "strata/core.morph" || !strings.Contains(de.Msg, "kind is stratum, but it is used as a system or cluster") {
		t.Errorf("got %v, want one saying a stratum is neither a system nor a cluster", err)
	}
}
