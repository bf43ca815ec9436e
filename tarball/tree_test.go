package tarball

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// node is one entry of a test tree.
type node struct {
	name string
	kind byte // 'f' file, 'd' directory, 'l' symlink, 'h' hard link, 'c' char device, 'p' FIFO
	mode fs.FileMode
	data string // file contents, symlink target or hard link target
}

// longName's last component is past the 100 bytes a USTAR header holds for
// it, so it needs a PAX record.
var longName = "opt/" + strings.Repeat("long-file-name-", 8)

// sampleTree is a DESTDIR holding every kind of entry Pack handles.
var sampleTree = []node{
	{"usr/bin/tool", 'f', 0o755, "tool binary"},
	{"usr/bin/tool-alias", 'h', 0, "usr/bin/tool"},
	{"usr/libexec/tool-helper", 'h', 0, "usr/bin/tool"},
	{"usr/sbin/su", 'f', fs.ModeSetuid | 0o755, "su binary"},
	{"usr/lib/libz.so.1.2", 'f', 0o644, "zlib"},
	{"usr/lib/libz.so.1", 'l', 0, "libz.so.1.2"},
	{"usr/lib/libz.so", 'l', 0, "/usr/lib/libz.so.1"},
	{"lib", 'l', 0, "usr/lib"}, // must be packed as a link, not walked into
	{"usr/include/zlib.h", 'f', 0o644, "header"},
	{"usr/share", 'd', 0o750, ""},
	{"usr/share/doc/zlib/README", 'f', 0o600, "docs"},
	{"etc/a/b", 'f', 0o644, "in a"},
	{"etc/a-b", 'f', 0o640, "beside a"},
	{"var/empty", 'd', 0o711, ""},
	{"tmp", 'd', fs.ModeSticky | 0o777, ""},
	{"dev/null", 'c', 0o666, "1,3"},
	{"run/initctl", 'p', 0o600, ""},
	{longName, 'f', 0o644, "long"},
}

// classifySample splits sampleTree roughly as the default split rules
// would. Nothing is installed under usr/share/locale, so zlib-locale must
// not be produced.
func classifySample(p string) (string, bool) {
	switch {
	case strings.HasPrefix(p, "usr/bin/"), strings.HasPrefix(p, "usr/sbin/"):
		return "zlib-bins", true
	case strings.HasPrefix(p, "usr/lib/lib"):
		return "zlib-libs", true
	case strings.HasPrefix(p, "usr/include/"):
		return "zlib-devel", true
	case strings.HasPrefix(p, "usr/share/locale/"):
		return "zlib-locale", true
	case strings.HasPrefix(p, "usr/share/doc/"):
		return "zlib-doc", true
	}
	return "zlib-misc", true
}

// makeTree creates nodes under dir in the given order (hard links last, as
// they need their targets), with exact modes whatever the umask.
func makeTree(t *testing.T, dir string, nodes []node) {
	t.Helper()
	create := func(n node) error {
		p := filepath.Join(dir, n.name)
		if err := mkdirs(dir, filepath.Dir(n.name)); err != nil {
			return err
		}
		var err error
		switch n.kind {
		case 'f':
			err = os.WriteFile(p, []byte(n.data), 0o600)
		case 'd':
			err = os.Mkdir(p, 0o700)
			if os.IsExist(err) {
				err = nil
			}
		case 'l':
			return os.Symlink(n.data, p)
		case 'h':
			return os.Link(filepath.Join(dir, n.data), p)
		case 'c':
			var major, minor int
			if _, err := fmt.Sscanf(n.data, "%d,%d", &major, &minor); err != nil {
				return err
			}
			err = syscall.Mknod(p, syscall.S_IFCHR|0o600, int(mkdev(uint64(major), uint64(minor))))
		case 'p':
			err = syscall.Mkfifo(p, 0o600)
		}
		if err != nil {
			return err
		}
		return os.Chmod(p, n.mode)
	}
	for _, hardLinks := range []bool{false, true} {
		for _, n := range nodes {
			if (n.kind == 'h') != hardLinks {
				continue
			}
			if err := create(n); err != nil {
				t.Fatalf("making test tree: %s: %v", n.name, err)
			}
		}
	}
}

// mkdirs creates the missing directories of rel under dir, mode 0755.
func mkdirs(dir, rel string) error {
	if rel == "." {
		return nil
	}
	if err := mkdirs(dir, filepath.Dir(rel)); err != nil {
		return err
	}
	p := filepath.Join(dir, rel)
	if err := os.Mkdir(p, 0o700); err != nil {
		if os.IsExist(err) {
			return nil
		}
		return err
	}
	return os.Chmod(p, 0o755)
}

// describeTree lists every entry under dir with its type, full mode and
// contents, symlink target or device numbers, skipping the subtree named
// skip (if any), so two trees compare with one string comparison.
func describeTree(t *testing.T, dir, skip string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		switch st := info.Sys().(*syscall.Stat_t); info.Mode().Type() {
		case 0:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q", data)
		case fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			line += fmt.Sprintf(" %d,%d", devMajor(uint64(st.Rdev)), devMinor(uint64(st.Rdev)))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("describing %s: %v", dir, err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// touchAll sets every non-symlink's times to an hour from now.
func touchAll(t *testing.T, dir string) {
	t.Helper()
	later := time.Now().Add(time.Hour)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, later, later)
	})
	if err != nil {
		t.Fatalf("touching %s: %v", dir, err)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
