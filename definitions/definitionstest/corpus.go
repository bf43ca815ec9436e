package definitionstest

import (
	"fmt"
	"testing/fstest"
)

// Corpus is a small definitions tree written the way real Baserock
// repositories are, with every idiom morph accepted at once: a chunk named
// like its stratum (ruby), one chunk name in several strata (groff: built
// the same way in foundation and cross-bootstrap, differently in docs), a
// system named like one of its strata (ruby), a system-integration entry
// and a system artifacts filter that name nothing, a chunk ref that is a
// branch, a cluster with a subsystem, and a release cluster whose systems
// are of three architectures (so the same chunks are built for each, as
// real release clusters do). Around them are the format's
// other features: DEFAULTS with anchors and merge keys defining every
// build system the format names, products and artifacts mappings,
// bootstrap, staging and test build modes, submodules, max-jobs on chunk
// morphs and chunk specs, devices, numbered system-integration steps and
// configuration-extensions.
type Corpus struct {
	// FS holds the files, ready for definitions.Open.
	FS fstest.MapFS
	// Cluster deploys DevelSystem with InitramfsSystem as its subsystem,
	// and RubySystem.
	Cluster, DevelSystem, InitramfsSystem, RubySystem string
	// MultiArchCluster deploys DevelSystem with InitramfsSystem as its
	// subsystem, ArmSystem (armv7lhf: most of DevelSystem's strata and a
	// board support stratum only it has) and Arm64System (armv8l64: only
	// build-essential).
	MultiArchCluster, ArmSystem, Arm64System string
	// BranchRef is the one chunk ref that is a branch, not a commit; it
	// belongs to the chunk bundler.
	BranchRef string
}

// NewCorpus writes the corpus in format version 7 or 8.
func NewCorpus(version int) *Corpus {
	c := &Corpus{
		FS:               fstest.MapFS{},
		Cluster:          "clusters/release.morph",
		DevelSystem:      "systems/devel-system-x86_64.morph",
		InitramfsSystem:  "systems/initramfs-x86_64.morph",
		RubySystem:       "systems/ruby-x86_64.morph",
		MultiArchCluster: "clusters/release-multiarch.morph",
		ArmSystem:        "systems/devel-system-armv7lhf.morph",
		Arm64System:      "systems/minimal-system-armv8l64.morph",
		BranchRef:        "baserock/ruby/bundler-2",
	}
	files := map[string]string{
		"VERSION":  fmt.Sprintf("version: %d\n", version),
		"DEFAULTS": corpusDefaults,
		"strata/build-essential.morph": `name: build-essential
kind: stratum
description: The toolchain, built with the host's tools.
chunks:
- name: stage1-binutils
  repo: upstream:binutils-tarball
  ref: ` + fakeCommit("binutils") + `
  unpetrify-ref: binutils-2.25
  build-system: autotools
  build-mode: bootstrap
  prefix: /tools
- name: stage1-gcc
  repo: upstream:gcc-tarball
  ref: ` + fakeCommit("gcc") + `
  unpetrify-ref: baserock/gcc-4.9.2
  morph: strata/build-essential/stage1-gcc.morph
  build-mode: bootstrap
  prefix: /tools
  build-depends:
  - stage1-binutils
- name: fhs-dirs
  repo: baserock:baserock/fhs-dirs
  ref: ` + fakeCommit("fhs-dirs") + `
  morph: strata/build-essential/fhs-dirs.morph
  build-depends:
  - stage1-gcc
`,
		"strata/build-essential/stage1-gcc.morph": `name: stage1-gcc
kind: chunk
build-system: autotools
max-jobs: 4
configure-commands:
- ./configure --prefix="$PREFIX" --disable-nls
`,
		"strata/build-essential/fhs-dirs.morph": `name: fhs-dirs
kind: chunk
description: The file system hierarchy, with the device nodes every system needs.
install-commands:
- install -d "$DESTDIR"/dev "$DESTDIR"/etc "$DESTDIR"/proc
devices:
- type: c
  filename: /dev/console
  permissions: '0600'
  uid: 0
  gid: 0
  major: 5
  minor: 1
- type: c
  filename: /dev/null
  permissions: 0666
  uid: 0
  gid: 0
  major: 1
  minor: 3
system-integration:
  fhs-dirs-misc:
    00-passwd:
    - touch /etc/passwd
    10-shadow:
    - touch /etc/shadow
`,
		"strata/foundation.morph": `name: foundation
kind: stratum
description: What every system runs on.
build-depends:
- morph: strata/build-essential.morph
products:
- artifact: foundation-openssl
  include:
  - openssl-.*
chunks:
- name: groff
  repo: upstream:groff-git
  ref: ` + fakeCommit("groff") + `
  unpetrify-ref: 1.22.3
  build-system: autotools
- name: openssl
  repo: upstream:openssl-new
  ref: ` + fakeCommit("openssl") + `
  unpetrify-ref: OpenSSL_1_0_2-stable
  morph: strata/foundation/openssl.morph
  max-jobs: 1
- name: systemd
  repo: upstream:systemd
  ref: ` + fakeCommit("systemd") + `
  morph: strata/foundation/systemd.morph
  build-depends:
  - openssl
  artifacts:
    systemd-tools: foundation-devel
- name: foundation-tests
  repo: baserock:baserock/system-tests
  ref: ` + fakeCommit("system-tests") + `
  build-system: manual
  build-mode: test
`,
		"strata/foundation/openssl.morph": `name: openssl
kind: chunk
configure-commands:
- ./config --prefix="$PREFIX" shared
build-commands:
- make
install-commands:
- make INSTALL_PREFIX="$DESTDIR" install_sw
`,
		"strata/foundation/systemd.morph": `name: systemd
kind: chunk
build-system: autotools
pre-configure-commands:
- ./autogen.sh
post-install-commands:
- ln -s ../lib/systemd/systemd "$DESTDIR$PREFIX"/sbin/init
products:
- artifact: systemd-tools
  include:
  - usr/bin/systemd-analyze
system-integration:
  systemd-misc:
    05-machine-id:
    - systemd-machine-id-setup
  ModemManager-misc:
    00-never:
    - echo morph ignored this entry
`,
		"strata/cross-bootstrap.morph": `name: cross-bootstrap
kind: stratum
description: Tools to bootstrap other architectures; groff is built exactly as in foundation.
build-depends:
- morph: strata/build-essential.morph
chunks:
- name: groff
  repo: upstream:groff-git
  ref: ` + fakeCommit("groff") + `
  unpetrify-ref: 1.22.3
  build-system: autotools
- name: cross-binutils
  repo: upstream:binutils-tarball
  ref: ` + fakeCommit("binutils") + `
  build-system: autotools
  build-depends:
  - groff
`,
		"strata/docs.morph": `name: docs
kind: stratum
description: Documentation tools; its groff is built on foundation, so it differs.
build-depends:
- morph: strata/foundation.morph
chunks:
- name: groff
  repo: upstream:groff-git
  ref: ` + fakeCommit("groff") + `
  build-system: autotools
`,
		"strata/ruby.morph": `name: ruby
kind: stratum
description: Ruby; its main chunk is named like the stratum.
build-depends:
- morph: strata/foundation.morph
chunks:
- name: ruby
  repo: upstream:ruby
  ref: ` + fakeCommit("ruby") + `
  build-system: autotools
  submodules:
    ext/json:
      url: upstream:ruby-json
- name: bundler
  repo: upstream:bundler
  ref: ` + c.BranchRef + `
  build-system: manual
  build-depends:
  - ruby
  artifacts:
    bundler-misc: ruby-devel
`,
		"strata/languages.morph": `name: languages
kind: stratum
description: One chunk for each remaining build system.
build-depends:
- morph: strata/foundation.morph
chunks:
- name: python-six
  repo: upstream:six
  ref: ` + fakeCommit("six") + `
  build-system: python-distutils
- name: pyyaml
  repo: upstream:pyyaml
  ref: ` + fakeCommit("pyyaml") + `
  build-system: python3-distutils
- name: perl-json
  repo: upstream:cpan/JSON
  ref: ` + fakeCommit("perl-json") + `
  build-system: cpan
- name: perl-module-build
  repo: upstream:cpan/Module-Build
  ref: ` + fakeCommit("module-build") + `
  build-system: module-build
- name: cmake
  repo: upstream:cmake
  ref: ` + fakeCommit("cmake") + `
  build-system: cmake
  max-jobs: 2
- name: qtbase
  repo: upstream:qt5/qtbase
  ref: ` + fakeCommit("qtbase") + `
  build-system: qmake
  build-depends:
  - cmake
`,
		"strata/bsp-armv7-highbank.morph": `name: bsp-armv7-highbank
kind: stratum
description: The kernel of one armv7lhf board.
build-depends:
- morph: strata/build-essential.morph
chunks:
- name: linux-armv7-highbank
  repo: upstream:linux-stable
  ref: ` + fakeCommit("linux") + `
  unpetrify-ref: v4.4
  build-system: manual
  max-jobs: 8
`,
		c.ArmSystem: `name: devel-system-armv7lhf
kind: system
description: The development system for an armv7lhf board.
arch: armv7lhf
strata:
- name: build-essential
  morph: strata/build-essential.morph
- name: foundation
  morph: strata/foundation.morph
- name: cross-bootstrap
  morph: strata/cross-bootstrap.morph
- name: docs
  morph: strata/docs.morph
- name: ruby
  morph: strata/ruby.morph
- name: bsp-armv7-highbank
  morph: strata/bsp-armv7-highbank.morph
`,
		c.Arm64System: `name: minimal-system-armv8l64
kind: system
arch: armv8l64
strata:
- morph: strata/build-essential.morph
`,
		c.MultiArchCluster: `name: release-multiarch
kind: cluster
description: Release images for every architecture, deployed together.
systems:
- morph: ` + c.DevelSystem + `
  deploy:
    devel-system-x86_64:
      type: extensions/rawdisk
      location: devel-x86_64.img
      DISK_SIZE: 6G
  subsystems:
  - morph: ` + c.InitramfsSystem + `
    deploy:
      initramfs:
        type: extensions/initramfs
        location: boot/initramfs.gz
- morph: ` + c.ArmSystem + `
  deploy:
    devel-system-armv7lhf:
      type: extensions/tar
      location: devel-armv7lhf.tar
- morph: ` + c.Arm64System + `
  deploy:
    minimal-system-armv8l64:
      type: extensions/tar
      location: minimal-armv8l64.tar
`,
		c.DevelSystem: `name: devel-system-x86_64
kind: system
description: A development system with every stratum.
arch: x86_64
configuration-extensions:
- extensions/set-hostname
- extensions/add-config-files
strata:
- name: build-essential
  morph: strata/build-essential.morph
- name: foundation
  morph: strata/foundation.morph
- name: cross-bootstrap
  morph: strata/cross-bootstrap.morph
- name: docs
  morph: strata/docs.morph
- name: ruby
  morph: strata/ruby.morph
- name: languages
  morph: strata/languages.morph
`,
		c.InitramfsSystem: `name: initramfs-x86_64
kind: system
arch: x86_64
strata:
- morph: strata/build-essential.morph
  artifacts:
  - -runtime
- morph: strata/foundation.morph
  artifacts:
  - -runtime
  - -openssl
  - foundation-core-openssl
`,
		c.RubySystem: `name: ruby
kind: system
description: A system named like one of its strata.
arch: x86_64
strata:
- morph: strata/build-essential.morph
- morph: strata/foundation.morph
- morph: strata/ruby.morph
`,
		c.Cluster: `name: release
kind: cluster
description: Deploy the development system with its initramfs, and the ruby system.
systems:
- morph: ` + c.DevelSystem + `
  deploy-defaults:
    HOSTNAME: baserock
  deploy:
    devel-system-x86_64:
      type: extensions/rawdisk
      location: devel.img
      DISK_SIZE: 6G
      INITRAMFS_PATH: boot/initramfs.gz
  subsystems:
  - morph: ` + c.InitramfsSystem + `
    deploy:
      initramfs:
        type: extensions/initramfs
        location: boot/initramfs.gz
- morph: ` + c.RubySystem + `
  deploy:
    ruby:
      type: extensions/tar
      location: ruby.tar
`,
	}
	for name, data := range files {
		c.FS[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return c
}

// corpusDefaults defines every build system the format names, sharing
// commands through anchors and building variants with merge keys, as real
// DEFAULTS files do.
const corpusDefaults = `build-systems:
  manual:
    configure-commands: []
    build-commands: []
    install-commands: []
    strip-commands: []
  autotools: &autotools
    configure-commands:
    - ./configure --prefix="$PREFIX"
    build-commands: &make
    - make
    install-commands: &make-install
    - make DESTDIR="$DESTDIR" install
    strip-commands: &strip
    - find "$DESTDIR" -type f -perm -u+x -exec strip --strip-unneeded {} +
  python-distutils: &distutils
    configure-commands: []
    build-commands:
    - python setup.py build
    install-commands:
    - python setup.py install --prefix "$PREFIX" --root "$DESTDIR"
    strip-commands: *strip
  python3-distutils:
    <<: *distutils
    build-commands:
    - python3 setup.py build
    install-commands:
    - python3 setup.py install --prefix "$PREFIX" --root "$DESTDIR"
  cpan:
    configure-commands:
    - perl Makefile.PL INSTALLDIRS=perl
    build-commands: *make
    install-commands: *make-install
    strip-commands: *strip
  module-build:
    configure-commands:
    - perl Build.PL --prefix "$PREFIX"
    build-commands:
    - ./Build
    install-commands:
    - ./Build install --destdir "$DESTDIR"
    strip-commands: *strip
  cmake:
    <<: *autotools
    configure-commands:
    - cmake -DCMAKE_INSTALL_PREFIX="$PREFIX" .
  qmake:
    <<: *autotools
    configure-commands:
    - qmake -makefile
    install-commands:
    - make INSTALL_ROOT="$DESTDIR" install
split-rules:
  chunk:
  - artifact: -bins
    include: [ '(usr/)?s?bin/.*' ]
  - artifact: -libs
    include: [ '(usr/)?lib(32|64)?/lib[^/]*\.so(\.\d+)*' ]
  - artifact: -devel
    include: [ '(usr/)?include/.*', '(usr/)?lib/pkgconfig/.*\.pc' ]
  - artifact: -misc
    include: [ '.*' ]
  stratum:
  - artifact: -devel
    include: [ '.*-devel' ]
  - artifact: -runtime
    include: [ '.*' ]
`
