package definitions_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"distbuild/definitions"
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
		{"two architectures", edit{file: "systems/small.morph", old: "arch: x86_64", new: "arch: armv7lhf"},
			cl, 14, `system "small-system" is for armv7lhf but system "base-system" is for x86_64`},
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
