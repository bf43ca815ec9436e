package definitions_test

import (
	"context"
	"maps"
	"testing"
	"testing/fstest"

	"distbuild/definitions"
)

// baseTree is a small but complete definitions tree exercising every feature
// the tests rely on: a bootstrap stratum, stratum build-depends two deep,
// chunks with and without morphs, products and artifacts overrides, a
// system-integration entry and a system artifacts filter.
func baseTree() fstest.MapFS {
	files := map[string]string{
		"VERSION": "version: 8\n",
		"strata/build-essential.morph": `name: build-essential
kind: stratum
description: Tools to build everything else.
chunks:
- name: stage1
  repo: upstream:stage1
  ref: 1111111111111111111111111111111111111111
  unpetrify-ref: master
  build-system: manual
  build-mode: bootstrap
- name: cc
  repo: upstream:cc
  ref: 2222222222222222222222222222222222222222
  morph: strata/build-essential/cc.morph
  build-mode: bootstrap
  prefix: /tools
  build-depends:
  - stage1
`,
		"strata/build-essential/cc.morph": `name: cc
kind: chunk
description: A compiler.
build-system: manual
build-commands:
- make
install-commands:
- make DESTDIR="$DESTDIR" install
`,
		"strata/core.morph": `name: core
kind: stratum
description: Core libraries.
build-depends:
- morph: strata/build-essential.morph
chunks:
- name: zlib
  repo: upstream:zlib
  ref: 3333333333333333333333333333333333333333
  unpetrify-ref: v1.3
  build-system: autotools
- name: libpng
  repo: upstream:libpng
  ref: 4444444444444444444444444444444444444444
  morph: strata/core/libpng.morph
  build-depends:
  - zlib
  artifacts:
    libpng-tools: core-devel
`,
		"strata/core/libpng.morph": `name: libpng
kind: chunk
description: PNG library.
build-system: autotools
pre-configure-commands:
- autoreconf -fi
install-commands:
- make DESTDIR="$DESTDIR" install-strip
max-jobs: 2
products:
- artifact: -tools
  include:
  - usr/bin/png.*
system-integration:
  libpng-libs:
    00-ldconfig:
    - ldconfig
`,
		"strata/tools.morph": `name: tools
kind: stratum
description: Programs.
build-depends:
- morph: strata/core.morph
chunks:
- name: app
  repo: https://git.example.org/app.git
  ref: 5555555555555555555555555555555555555555
  build-system: cmake
`,
		"systems/base.morph": `name: base-system
kind: system
description: A small system.
arch: x86_64
configuration-extensions:
- set-hostname
strata:
- name: build-essential
  morph: strata/build-essential.morph
- name: core
  morph: strata/core.morph
  artifacts:
  - -runtime
- name: tools
  morph: strata/tools.morph
`,
	}
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

// with returns a copy of fsys with files replaced (or removed when nil).
func with(fsys fstest.MapFS, changes map[string]*string) fstest.MapFS {
	out := maps.Clone(fsys)
	for name, data := range changes {
		if data == nil {
			delete(out, name)
			continue
		}
		out[name] = &fstest.MapFile{Data: []byte(*data)}
	}
	return out
}

func ptr(s string) *string { return &s }

func resolve(t *testing.T, fsys fstest.MapFS, system string) (*definitions.Graph, error) {
	t.Helper()
	defs, err := definitions.Open(fsys)
	if err != nil {
		return nil, err
	}
	return defs.Resolve(context.Background(), system, definitions.CommitsOnly{})
}

func mustResolve(t *testing.T, fsys fstest.MapFS) *definitions.Graph {
	t.Helper()
	g, err := resolve(t, fsys, "systems/base.morph")
	if err != nil {
		t.Fatalf("resolving the base tree: %v", err)
	}
	return g
}

func names(steps []*definitions.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}
