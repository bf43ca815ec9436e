package tarball

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ent is an entry of a hand-made tarball.
type ent struct {
	typ          byte
	name, link   string
	mode         int64
	body         string
	major, minor int64
}

func makeTar(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: mode,
			Size: int64(len(e.body)), Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("writing test tarball entry %q: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unpackFile(t *testing.T, path, dest string, opts UnpackOptions) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Unpack(f, dest, opts); err != nil {
		t.Fatalf("Unpack %s: %v", path, err)
	}
}

var allowAll = UnpackOptions{AllowDevices: true, AllowSetuid: true}

func TestUnpackRoundTripsPackedTree(t *testing.T) {
	tree, dest := t.TempDir(), t.TempDir()
	makeTree(t, tree, sampleTree)
	// All artifacts into one staging area: they share usr/.
	for _, a := range pack(t, tree, classifySample) {
		unpackFile(t, a.Path, dest, allowAll)
	}
	if got, want := describeTree(t, dest, ""), describeTree(t, tree, ""); got != want {
		t.Errorf("unpacked tree:\n%s\nwant the packed tree:\n%s", got, want)
	}
	if inode(t, filepath.Join(dest, "usr/bin/tool")) != inode(t, filepath.Join(dest, "usr/bin/tool-alias")) {
		t.Error("usr/bin/tool-alias is not a hard link to usr/bin/tool after unpacking")
	}
	info, err := os.Stat(filepath.Join(dest, "usr/lib/libz.so.1.2"))
	if err != nil {
		t.Fatal(err)
	}
	if info.ModTime().Unix() != 0 {
		t.Errorf("unpacked file mtime %v; want the tarball's, the epoch", info.ModTime())
	}
}

func TestUnpackAcceptsDotSlashNames(t *testing.T) {
	dest := t.TempDir()
	if err := os.Chmod(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	data := makeTar(t, ent{typ: tar.TypeDir, name: "./", mode: 0o700},
		ent{typ: tar.TypeDir, name: "./etc/", mode: 0o755},
		ent{typ: tar.TypeReg, name: "./etc/motd", body: "hello"})
	if err := Unpack(bytes.NewReader(data), dest, UnpackOptions{}); err != nil {
		t.Fatalf("Unpack of a tarball made by tar -C dir .: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "etc/motd")); string(got) != "hello" {
		t.Errorf("etc/motd holds %q (%v); want %q", got, err, "hello")
	}
	if mode := mustLstat(t, dest).Mode().Perm(); mode != 0o755 {
		t.Errorf("dest's mode became %v after the tarball's ./ entry; want 0755 kept, dest belongs to the caller", mode)
	}
}

func TestUnpackReplacesFilesAndKeepsOthers(t *testing.T) {
	dest := t.TempDir()
	makeTree(t, dest, []node{
		{"usr/bin/tool", 'f', 0o644, "old tool"},
		{"usr/bin/other", 'f', 0o755, "from another artifact"},
	})
	data := makeTar(t, ent{typ: tar.TypeDir, name: "usr/bin/", mode: 0o755},
		ent{typ: tar.TypeReg, name: "usr/bin/tool", mode: 0o755, body: "new tool"})
	if err := Unpack(bytes.NewReader(data), dest, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	want := describeTree(t, func() string {
		d := t.TempDir()
		makeTree(t, d, []node{
			{"usr/bin/tool", 'f', 0o755, "new tool"},
			{"usr/bin/other", 'f', 0o755, "from another artifact"},
		})
		return d
	}(), "")
	if got := describeTree(t, dest, ""); got != want {
		t.Errorf("after unpacking over an existing tree:\n%s\nwant\n%s", got, want)
	}
}

func TestUnpackReplacesSymlinkRatherThanWritingThroughIt(t *testing.T) {
	base := t.TempDir()
	outside, dest := filepath.Join(base, "outside"), filepath.Join(base, "dest")
	makeTree(t, base, []node{{"outside/target", 'f', 0o644, "outside"}, {"dest", 'd', 0o755, ""}})
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dest, "conf")); err != nil {
		t.Fatal(err)
	}
	data := makeTar(t, ent{typ: tar.TypeReg, name: "conf", body: "inside"})
	if err := Unpack(bytes.NewReader(data), dest, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(outside, "target")); string(got) != "outside" {
		t.Errorf("file behind the old symlink holds %q; want it untouched", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "conf")); string(got) != "inside" {
		t.Errorf("conf holds %q; want the tarball's file", got)
	}
}

func TestUnpackCreatesFifosAndDevicesWhenAllowed(t *testing.T) {
	dest := t.TempDir()
	data := makeTar(t,
		ent{typ: tar.TypeFifo, name: "run/fifo", mode: 0o600},
		ent{typ: tar.TypeChar, name: "dev/null", mode: 0o666, major: 1, minor: 3},
		ent{typ: tar.TypeBlock, name: "dev/loop0", mode: 0o660, major: 7, minor: 0})
	if err := Unpack(bytes.NewReader(data), dest, UnpackOptions{AllowDevices: true}); err != nil {
		t.Fatal(err)
	}
	got := describeTree(t, dest, "")
	want := strings.Join([]string{
		". " + mustLstat(t, dest).Mode().String(),
		"dev drwxr-xr-x",
		"dev/loop0 Drw-rw---- 7,0",
		"dev/null Dcrw-rw-rw- 1,3",
		"run drwxr-xr-x",
		"run/fifo prw-------",
	}, "\n")
	if got != want {
		t.Errorf("unpacked:\n%s\nwant\n%s", got, want)
	}
}

func mustLstat(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestUnpackRefusesHostileEntries(t *testing.T) {
	reg := func(name string) ent { return ent{typ: tar.TypeReg, name: name, body: "evil"} }
	sym := func(name, target string) ent { return ent{typ: tar.TypeSymlink, name: name, link: target} }
	link := func(name, target string) ent { return ent{typ: tar.TypeLink, name: name, link: target} }
	dir := func(name string) ent { return ent{typ: tar.TypeDir, name: name, mode: 0o755} }
	// Each case's last entry must be refused; outside is the absolute
	// path of a directory beside dest holding "secret". A symlink that
	// leads out is refused itself, so writing through one is tried with
	// symlinks that are allowed: absolute ones and inner ones.
	cases := []struct {
		name string
		ents func(outside string) []ent
		opts UnpackOptions
		want string
	}{
		{"parent reference", func(string) []ent { return []ent{reg("../evil")} }, allowAll, `".." component`},
		{"absolute name", func(o string) []ent { return []ent{reg(o + "/evil")} }, allowAll, "absolute path"},
		{"absolute /etc name", func(string) []ent { return []ent{reg("/etc/distbuild-evil")} }, allowAll, "absolute path"},
		{"inner parent reference", func(string) []ent { return []ent{reg("a/../../evil")} }, allowAll, `".." component`},
		{"symlink up and out", func(string) []ent { return []ent{sym("link", "../../..")} }, allowAll, "leads outside"},
		{"nested symlink out", func(string) []ent { return []ent{dir("sub/"), sym("sub/up", "../../x")} }, allowAll, "leads outside"},
		{"file through absolute symlink", func(o string) []ent { return []ent{sym("abs", o), reg("abs/evil")} }, allowAll, "parent abs is a symlink"},
		{"directory through absolute symlink", func(o string) []ent { return []ent{sym("abs", o), dir("abs/d/")} }, allowAll, "parent abs is a symlink"},
		{"file through inner symlink", func(string) []ent { return []ent{dir("sub/"), sym("in", "sub"), reg("in/evil")} }, allowAll, "parent in is a symlink"},
		{"hard link to absolute path", func(string) []ent { return []ent{link("h", "/etc/passwd")} }, allowAll, "absolute path"},
		{"hard link up and out", func(string) []ent { return []ent{link("h", "../outside/secret")} }, allowAll, `".." component`},
		{"hard link through symlink", func(o string) []ent { return []ent{sym("abs", o), link("h", "abs/secret")} }, allowAll, "parent abs is a symlink"},
		{"hard link to directory", func(string) []ent { return []ent{dir("d/"), link("h", "d")} }, allowAll, "not a regular file"},
		{"hard link to symlink", func(o string) []ent { return []ent{sym("s", o+"/secret"), link("h", "s")} }, allowAll, "not a regular file"},
		{"char device", func(string) []ent { return []ent{{typ: tar.TypeChar, name: "null", major: 1, minor: 3}} }, UnpackOptions{AllowSetuid: true}, "device nodes are refused"},
		{"block device", func(string) []ent { return []ent{{typ: tar.TypeBlock, name: "sda", major: 8}} }, UnpackOptions{AllowSetuid: true}, "device nodes are refused"},
		{"setuid file", func(string) []ent { return []ent{{typ: tar.TypeReg, name: "su", mode: 0o4755}} }, UnpackOptions{AllowDevices: true}, "setuid/setgid"},
		{"setgid file", func(string) []ent { return []ent{{typ: tar.TypeReg, name: "wall", mode: 0o2755}} }, UnpackOptions{AllowDevices: true}, "setuid/setgid"},
		{"unknown type", func(string) []ent { return []ent{{typ: 'Z', name: "odd"}} }, allowAll, "unsupported entry type"},
		{"file over directory", func(string) []ent { return []ent{dir("d/"), reg("d")} }, allowAll, "directory already exists"},
		{"file below file", func(string) []ent { return []ent{reg("f"), reg("f/x")} }, allowAll, "parent f is not a directory"},
		{"file named as destination", func(string) []ent { return []ent{reg(".")} }, allowAll, "destination directory itself"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			outside, dest := filepath.Join(base, "outside"), filepath.Join(base, "a/b/dest")
			makeTree(t, base, []node{{"outside/secret", 'f', 0o644, "secret"}, {"a/b/dest", 'd', 0o755, ""}})
			before := describeTree(t, base, dest)
			ents := c.ents(outside)
			err := Unpack(bytes.NewReader(makeTar(t, ents...)), dest, c.opts)
			bad := ents[len(ents)-1].name
			if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Unpack: %v; want an error about entry %q saying %q", err, bad, c.want)
			}
			if after := describeTree(t, base, dest); after != before {
				t.Errorf("outside dest changed:\n%s\nwas\n%s", after, before)
			}
			if _, err := os.Lstat("/etc/distbuild-evil"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("/etc/distbuild-evil exists (%v); nothing may be written outside dest", err)
			}
		})
	}
}

func TestUnpackRefusesMissingDestination(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	err := Unpack(bytes.NewReader(makeTar(t, ent{typ: tar.TypeReg, name: "f"})), missing, UnpackOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Unpack into a missing directory: %v; want a not-exist error", err)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Unpack created %s (%v); it must only fill an existing directory", missing, err)
	}
}

func TestUnpackRefusesCorruptTarball(t *testing.T) {
	data := makeTar(t, ent{typ: tar.TypeReg, name: "f", body: strings.Repeat("x", 1000)})
	err := Unpack(bytes.NewReader(data[:700]), t.TempDir(), UnpackOptions{})
	if err == nil {
		t.Error("Unpack of a truncated tarball succeeded; want an error")
	}
}
