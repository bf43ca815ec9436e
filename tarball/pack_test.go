package tarball

import (
	"archive/tar"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func pack(t *testing.T, destdir string, classify func(string) (string, bool)) []Artifact {
	t.Helper()
	arts, err := Pack(destdir, t.TempDir(), classify)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return arts
}

// digests summarises artifacts for comparison, leaving out their paths.
func digests(arts []Artifact) string {
	var b strings.Builder
	for _, a := range arts {
		fmt.Fprintf(&b, "%s %s %d\n", a.Name, a.SHA256, a.Size)
	}
	return b.String()
}

func readHeaders(t *testing.T, path string) []*tar.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdrs []*tar.Header
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return hdrs
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		hdrs = append(hdrs, hdr)
	}
}

func TestPackGivesIdenticalDigestsForIdenticalFiles(t *testing.T) {
	tree := t.TempDir()
	makeTree(t, tree, sampleTree)
	want := digests(pack(t, tree, classifySample))

	if got := digests(pack(t, tree, classifySample)); got != want {
		t.Errorf("packing the same tree twice:\n%s\nthen\n%s", want, got)
	}
	touchAll(t, tree)
	if got := digests(pack(t, tree, classifySample)); got != want {
		t.Errorf("after changing mtimes:\n%s\nwant\n%s", got, want)
	}
	reversed := slices.Clone(sampleTree)
	slices.Reverse(reversed)
	copied := t.TempDir()
	makeTree(t, copied, reversed)
	if got := digests(pack(t, copied, classifySample)); got != want {
		t.Errorf("a copy made in reverse order:\n%s\nwant\n%s", got, want)
	}

	// The digests do depend on content: changing one header changes only
	// the devel artifact.
	if err := os.WriteFile(filepath.Join(copied, "usr/include/zlib.h"), []byte("HEADER"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := pack(t, copied, classifySample)
	for i, a := range pack(t, tree, classifySample) {
		if same := a.SHA256 == changed[i].SHA256; same != (a.Name != "zlib-devel") {
			t.Errorf("after changing usr/include/zlib.h, %s digest unchanged = %v", a.Name, same)
		}
	}
}

func TestPackReportsDigestAndSizeOfFilesInOutDir(t *testing.T) {
	tree, out := t.TempDir(), filepath.Join(t.TempDir(), "not", "yet", "made")
	makeTree(t, tree, sampleTree)
	arts, err := Pack(tree, out, classifySample)
	if err != nil {
		t.Fatalf("Pack into a directory still to be made: %v", err)
	}
	for _, a := range arts {
		if filepath.Dir(a.Path) != out {
			t.Errorf("%s written to %s; want it in %s", a.Name, a.Path, out)
		}
		data, err := os.ReadFile(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != a.Size {
			t.Errorf("%s: Size %d, file has %d bytes", a.Name, a.Size, len(data))
		}
		if got := sha256Hex(data); got != a.SHA256 {
			t.Errorf("%s: SHA256 %s, file hashes to %s", a.Name, a.SHA256, got)
		}
	}
}

func TestPackSplitsFilesWithTheirParentDirectories(t *testing.T) {
	tree := t.TempDir()
	makeTree(t, tree, sampleTree)
	got := map[string][]string{}
	var names []string
	for _, a := range pack(t, tree, classifySample) {
		names = append(names, a.Name)
		for _, h := range readHeaders(t, a.Path) {
			line := fmt.Sprintf("%c %s %04o", h.Typeflag, h.Name, h.Mode)
			switch h.Typeflag {
			case tar.TypeSymlink, tar.TypeLink:
				line += " -> " + h.Linkname
			case tar.TypeChar:
				line += fmt.Sprintf(" %d,%d", h.Devmajor, h.Devminor)
			}
			got[a.Name] = append(got[a.Name], line)
		}
	}
	if want := []string{"zlib-bins", "zlib-devel", "zlib-doc", "zlib-libs", "zlib-misc"}; !slices.Equal(names, want) {
		t.Errorf("artifacts %v, want %v (sorted, and no empty zlib-locale)", names, want)
	}
	want := map[string][]string{
		"zlib-bins": {
			"5 usr/ 0755", "5 usr/bin/ 0755", "0 usr/bin/tool 0755",
			"1 usr/bin/tool-alias 0755 -> usr/bin/tool",
			"5 usr/sbin/ 0755", "0 usr/sbin/su 4755",
		},
		"zlib-devel": {"5 usr/ 0755", "5 usr/include/ 0755", "0 usr/include/zlib.h 0644"},
		"zlib-doc": {
			"5 usr/ 0755", "5 usr/share/ 0750", "5 usr/share/doc/ 0755",
			"5 usr/share/doc/zlib/ 0755", "0 usr/share/doc/zlib/README 0600",
		},
		"zlib-libs": {
			"5 usr/ 0755", "5 usr/lib/ 0755",
			"2 usr/lib/libz.so 0777 -> /usr/lib/libz.so.1",
			"2 usr/lib/libz.so.1 0777 -> libz.so.1.2",
			"0 usr/lib/libz.so.1.2 0644",
		},
		"zlib-misc": {
			"5 dev/ 0755", "3 dev/null 0666 1,3",
			// Byte order: "etc/a" < "etc/a-b" < "etc/a/b".
			"5 etc/ 0755", "5 etc/a/ 0755", "0 etc/a-b 0640", "0 etc/a/b 0644",
			"2 lib 0777 -> usr/lib",
			"5 opt/ 0755", "0 " + longName + " 0644",
			"5 run/ 0755", "6 run/initctl 0600",
			"5 tmp/ 1777",
			// The helper's first link in this artifact carries the data.
			"5 usr/ 0755", "5 usr/libexec/ 0755", "0 usr/libexec/tool-helper 0755",
			"5 var/ 0755", "5 var/empty/ 0711",
		},
	}
	for name, lines := range want {
		if !slices.Equal(got[name], lines) {
			t.Errorf("%s holds\n  %s\nwant\n  %s", name, strings.Join(got[name], "\n  "), strings.Join(lines, "\n  "))
		}
	}
}

func TestPackWritesOnlyBuildIndependentMetadata(t *testing.T) {
	tree := t.TempDir()
	makeTree(t, tree, sampleTree)
	touchAll(t, tree)
	for _, a := range pack(t, tree, classifySample) {
		for _, h := range readHeaders(t, a.Path) {
			var pax []string
			for k := range h.PAXRecords {
				pax = append(pax, k)
			}
			wantPAX := []string(nil)
			if strings.TrimSuffix(h.Name, "/") == longName {
				wantPAX = []string{"path"}
			}
			if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" ||
				h.ModTime.Unix() != 0 || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() ||
				!slices.Equal(pax, wantPAX) || (h.Format != tar.FormatUSTAR && h.Format != tar.FormatPAX) {
				t.Errorf("%s: %s: uid %d gid %d uname %q gname %q mtime %v atime %v ctime %v PAX %v format %v; "+
					"want root without names, mtime at the epoch, no other times, PAX records %v, USTAR/PAX format",
					a.Name, h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime.UTC(), h.AccessTime, h.ChangeTime, pax, h.Format, wantPAX)
			}
		}
	}
}

func TestPackRefusesUnclassifiedPaths(t *testing.T) {
	tree, out := t.TempDir(), t.TempDir()
	makeTree(t, tree, sampleTree)
	partial := func(p string) (string, bool) {
		if p == "usr/include/zlib.h" || p == "var/empty" {
			return "", false
		}
		return classifySample(p)
	}
	arts, err := Pack(tree, out, partial)
	if err == nil || !strings.Contains(err.Error(), "usr/include/zlib.h, var/empty") {
		t.Errorf("Pack with rules missing two paths: %v, %v; want an error naming usr/include/zlib.h and var/empty", arts, err)
	}
	assertEmptyDir(t, out)
}

func TestPackRefusesSocketsAndLeavesNoTarballs(t *testing.T) {
	tree, out := t.TempDir(), t.TempDir()
	makeTree(t, tree, sampleTree)
	l, err := net.Listen("unix", filepath.Join(tree, "run/sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// run/sock is in zlib-misc, written after the other artifacts.
	arts, err := Pack(tree, out, classifySample)
	if err == nil || !strings.Contains(err.Error(), "run/sock") {
		t.Errorf("Pack of a tree with a socket: %v, %v; want an error naming run/sock", arts, err)
	}
	assertEmptyDir(t, out)
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%s holds %v after a failed Pack; want nothing", dir, left)
	}
}
