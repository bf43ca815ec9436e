package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeGivesVersionRevisionModifiedAndCommitTime(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"v1.2.3", settings("vcs.revision", "0123456789abcdef0123", "vcs.time", "2026-08-01T10:00:00Z", "vcs.modified", "false"),
			"v1.2.3 (revision 0123456789ab, committed 2026-08-01T10:00:00Z)"},
		{"(devel)", settings("vcs.revision", "0123456789abcdef0123", "vcs.modified", "true", "vcs.time", "2026-08-01T10:00:00Z"),
			"(devel) (revision 0123456789ab, modified, committed 2026-08-01T10:00:00Z)"},
		{"", settings("-buildmode", "exe"), "(devel) (revision unknown)"},
	} {
		info := &debug.BuildInfo{Main: debug.Module{Path: "distbuild", Version: tc.version}, Settings: tc.settings}
		if got := describe(info); got != tc.want {
			t.Errorf("describe(%s, %v) = %q, want %q", tc.version, tc.settings, got, tc.want)
		}
	}
}

// A binary built from this checkout says which commit it was built from.
func TestABuiltBinaryPrintsItsRevision(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout, so a build records no revision to check: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		t.Skip("this checkout is a git worktree (.git is a file), where Go records no VCS information; a clone runs this test")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "versioncmd")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./testdata/versioncmd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("versioncmd --version: %v", err)
	}
	want := regexp.MustCompile(`^versioncmd \S+ \(revision ([0-9a-f]{12})(, modified)?, committed \S+\)\n$`)
	m := want.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("--version printed %q, want it to match %s", out, want)
	}
	if rev := strings.TrimSpace(string(head))[:12]; m[1] != rev {
		t.Errorf("--version names revision %s, want HEAD's %s", m[1], rev)
	}
}
