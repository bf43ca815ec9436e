package sandbox

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

// requireBwrap fails, rather than skips, a test that needs bubblewrap:
// CI installs it, so its absence is a broken setup.
func requireBwrap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatalf("this test needs bubblewrap: install the bubblewrap package (%v)", err)
	}
}

// busyboxStaging makes a staging area whose only program is a static
// busybox, so a sandbox can be shown to run on the staging area alone.
// bin/sh is an absolute symlink, which must resolve inside the staging
// area, not on the host.
func busyboxStaging(t *testing.T) string {
	t.Helper()
	requireBwrap(t)
	const busybox = "/bin/busybox"
	f, err := elf.Open(busybox)
	if err != nil {
		t.Fatalf("this test needs a static %s: install the busybox-static package (%v)", busybox, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; this test needs the busybox-static package", busybox)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	staging := t.TempDir()
	writeTree(t, staging, map[string]string{
		"bin/busybox":    string(data),
		"bin/sh":         "-> /bin/busybox",
		"etc/marker":     "staging root\n",
		"usr/share/keep": "",
	})
	if err := os.Chmod(filepath.Join(staging, "bin/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"cat", "readlink", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(staging, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return staging
}

// writeTree creates files (0644) and, for contents "-> target", symlinks.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// listTree names everything under dir, to show that nothing changed.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		names = append(names, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, "\n")
}

func bwrapSpec(t *testing.T, buildMode pb.BuildMode, staging, command string) Spec {
	s := Spec{
		Mode: Bwrap, BuildMode: buildMode, Staging: staging,
		BuildDir: t.TempDir(), DestDir: t.TempDir(),
		Command: command, KillGrace: 200 * time.Millisecond,
	}
	_, dest := s.Paths()
	s.Env = []string{"PATH=/usr/bin:/bin", "DESTDIR=" + dest}
	return s
}

// runOK runs s and returns its stdout, failing the test unless it exits 0.
func runOK(t *testing.T, s Spec) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	res, err := Run(context.Background(), s)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v; stderr: %s", res, err, stderr.String())
	}
	return stdout.String()
}

func hostNetNamespace(t *testing.T) string {
	t.Helper()
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestAvailableFindsWorkingBwrap(t *testing.T) {
	requireBwrap(t)
	if err := Available(Bwrap); err != nil {
		t.Errorf("Available(Bwrap): %v", err)
	}
}

func TestBwrapStagingStepRunsOnStagingArea(t *testing.T) {
	s := bwrapSpec(t, stagingMode, busyboxStaging(t), `cat /etc/marker; pwd; echo out > "$DESTDIR/file"; echo src > file`)
	if got, want := runOK(t, s), "staging root\n/distbuild/build\n"; got != want {
		t.Errorf("output %q; want %q", got, want)
	}
	for p, want := range map[string]string{filepath.Join(s.DestDir, "file"): "out\n", filepath.Join(s.BuildDir, "file"): "src\n"} {
		if got, err := os.ReadFile(p); string(got) != want {
			t.Errorf("%s holds %q (%v); want %q", p, got, err, want)
		}
	}
}

func TestBwrapStagingStepHasNoNetwork(t *testing.T) {
	s := bwrapSpec(t, stagingMode, busyboxStaging(t), "readlink /proc/self/ns/net; cat /proc/net/dev")
	lines := strings.Split(strings.TrimSpace(runOK(t, s)), "\n")
	if lines[0] == hostNetNamespace(t) {
		t.Errorf("sandbox shares the host's network namespace %s", lines[0])
	}
	var ifaces []string
	for _, l := range lines[1:] {
		if name, _, ok := strings.Cut(l, ":"); ok {
			ifaces = append(ifaces, strings.TrimSpace(name))
		}
	}
	if strings.Join(ifaces, " ") != "lo" {
		t.Errorf("network interfaces in the sandbox: %v; want only lo", ifaces)
	}
}

func TestBwrapStagingStepCanWriteOnlyBuildDestAndTmp(t *testing.T) {
	staging := busyboxStaging(t)
	before := listTree(t, staging)
	s := bwrapSpec(t, stagingMode, staging, `
		for d in / /etc /bin /usr/share /distbuild; do
			if echo x > $d/new 2>/dev/null; then echo "wrote $d"; fi
		done
		echo x > /tmp/new && echo x > /distbuild/build/new && echo x > /distbuild/install/new && echo wrote allowed`)
	if got, want := runOK(t, s), "wrote allowed\n"; got != want {
		t.Errorf("output %q; want %q", got, want)
	}
	if after := listTree(t, staging); after != before {
		t.Errorf("staging area changed:\n%s\nwas\n%s", after, before)
	}
}

func TestBwrapStagingWithoutShellFailsBeforeRunning(t *testing.T) {
	requireBwrap(t)
	for _, c := range []struct {
		name  string
		files map[string]string
	}{
		{"empty", map[string]string{}},
		{"dangling link", map[string]string{"bin/sh": "-> dash"}},
		{"host-only target", map[string]string{"bin/sh": "-> /usr/bin/dash"}},
		{"link loop", map[string]string{"bin/sh": "-> ../bin/sh"}},
		{"not executable", map[string]string{"bin/sh": "-> sh.txt", "bin/sh.txt": ""}},
		{"directory", map[string]string{"bin/sh/x": ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			staging := t.TempDir()
			writeTree(t, staging, c.files)
			var out bytes.Buffer
			s := bwrapSpec(t, stagingMode, staging, "echo ran > ran")
			s.Stdout, s.Stderr = &out, &out
			_, err := Run(context.Background(), s)
			if !errors.Is(err, ErrNoShell) || !strings.Contains(err.Error(), "staging area has no /bin/sh") {
				t.Errorf("Run: %v; want ErrNoShell", err)
			}
			if _, serr := os.Stat(filepath.Join(s.BuildDir, "ran")); out.Len() > 0 || serr == nil {
				t.Errorf("something ran: output %q", out.String())
			}
		})
	}
}

func TestBwrapStagingShellFoundThroughSymlinks(t *testing.T) {
	// A merged-/usr staging area: /bin -> usr/bin, and /usr/bin/sh an
	// absolute link to busybox.
	staging := busyboxStaging(t)
	if err := os.Rename(filepath.Join(staging, "bin"), filepath.Join(staging, "usr/bin")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, staging, map[string]string{"bin": "-> usr/bin"})
	os.Remove(filepath.Join(staging, "usr/bin/sh"))
	writeTree(t, staging, map[string]string{"usr/bin/sh": "-> /usr/bin/busybox"})
	if got := runOK(t, bwrapSpec(t, stagingMode, staging, "echo ok; readlink /bin")); got != "ok\nusr/bin\n" {
		t.Errorf("output %q; want %q", got, "ok\nusr/bin\n")
	}
}

func TestBwrapHostToolStepsSeeHostAndReadOnlyStaging(t *testing.T) {
	requireBwrap(t)
	for _, mode := range []pb.BuildMode{bootstrapMode, testMode} {
		t.Run(mode.String(), func(t *testing.T) {
			staging := t.TempDir()
			writeTree(t, staging, map[string]string{"marker": "from staging\n"})
			s := bwrapSpec(t, mode, staging, fmt.Sprintf(`
				command -v cat >/dev/null && echo host cat
				cat %[1]s/marker
				for d in %[1]s /etc /usr; do
					if echo x > $d/new 2>/dev/null; then echo "wrote $d"; fi
				done
				echo x > /tmp/new && echo x > new && echo x > "$DESTDIR/new" && echo wrote allowed
				pwd
				readlink /proc/self/ns/net`, staging))
			s.Env = StagingEnv(staging, s.Env)
			want := fmt.Sprintf("host cat\nfrom staging\nwrote allowed\n%s\n", s.BuildDir)
			got := runOK(t, s)
			if !strings.HasPrefix(got, want) || strings.Contains(got, hostNetNamespace(t)) {
				t.Errorf("output %q; want %q then a network namespace other than %s", got, want, hostNetNamespace(t))
			}
			for _, p := range []string{filepath.Join(s.BuildDir, "new"), filepath.Join(s.DestDir, "new")} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("write in the sandbox did not reach %s: %v", p, err)
				}
			}
		})
	}
}

func TestBwrapCancelKillsSandboxedProcesses(t *testing.T) {
	// A duration no other process uses marks this test's sleeps.
	mark := fmt.Sprintf("1000.%d", os.Getpid())
	out := newWatch("started")
	s := bwrapSpec(t, stagingMode, busyboxStaging(t), fmt.Sprintf("sleep %s & sleep %[1]s & echo started; wait", mark))
	s.Stdout = out
	ctx, cancel := context.WithCancel(context.Background())
	done := start(ctx, s)
	waitSeen(t, out)
	waitProcesses(t, "sandboxed sleeps before cancelling", withArg(mark), 2)
	cancel()
	if o := wait(t, done); !errors.Is(o.err, ErrCancelled) {
		t.Errorf("Run: %v; want ErrCancelled", o.err)
	}
	waitProcesses(t, "sandboxed sleeps after cancelling", withArg(mark), 0)
}

// TestBwrapCancelDuringStartUpLeavesNothingRunning stops sandboxes at many
// points of bubblewrap's start-up. The sandbox's init arms
// --die-with-parent only at the end of it, so a sandbox whose init had
// left Run's process group by then (as bubblewrap's --new-session made it)
// outlived Run when stopped in between: the outer bubblewrap died of the
// signal and the sandbox ran its command, orphaned, for as long as it
// liked.
func TestBwrapCancelDuringStartUpLeavesNothingRunning(t *testing.T) {
	staging := busyboxStaging(t)
	// A duration no other process uses marks this test's sleeps (the pid
	// has a fixed width, so no other test process's mark extends this one);
	// every bubblewrap of the test has it on its command line too.
	mark := fmt.Sprintf("2000.%07d", os.Getpid())
	ours := func(_ []string, cmdline string) bool { return strings.Contains(cmdline, mark) }
	t.Cleanup(func() {
		// A failed run's sandboxes must not sleep on after the test.
		for _, p := range processes(ours) {
			if pid, err := strconv.Atoi(strings.Fields(p)[0]); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	spec := func(i int) Spec {
		s := bwrapSpec(t, stagingMode, staging, fmt.Sprintf("echo started; exec sleep %s%03d", mark, i))
		s.KillGrace = 20 * time.Millisecond
		return s
	}

	// How long a sandbox takes to start here, now, so that the stops
	// below fall all through the start-up whatever the machine's speed
	// and load.
	var startUp time.Duration
	for i := range 3 {
		out := newWatch("started")
		s := spec(i)
		s.Stdout = out
		ctx, cancel := context.WithCancel(context.Background())
		began := time.Now()
		done := start(ctx, s)
		waitSeen(t, out)
		startUp = max(startUp, time.Since(began))
		cancel()
		wait(t, done)
	}

	const stops = 40
	for i := range stops {
		ctx, cancel := context.WithCancel(context.Background())
		stop := time.AfterFunc(startUp*time.Duration(i)/stops, cancel)
		if _, err := Run(ctx, spec(100+i)); !errors.Is(err, ErrCancelled) {
			t.Errorf("Run stopped after %v: %v; want ErrCancelled", startUp*time.Duration(i)/stops, err)
		}
		stop.Stop()
		cancel()
	}
	waitProcesses(t, fmt.Sprintf("sandboxes stopped during their %v start-up", startUp), ours, 0)
}

func TestSystemRootCommandsChangeTheRootAndNothingElse(t *testing.T) {
	for _, mode := range []Mode{None, Bwrap} {
		t.Run(string(mode), func(t *testing.T) {
			root := busyboxStaging(t)
			outside := t.TempDir()
			s := Spec{
				Mode: mode, Root: root, KillGrace: 200 * time.Millisecond,
				Env: []string{"PATH=/bin"},
				// The root is writable, the working directory is its top,
				// and the host is out of sight.
				Command: fmt.Sprintf("echo integrated > etc/integrated && cat /etc/marker && test ! -e %s && echo in $PWD", outside),
			}
			if got := runOK(t, s); got != "staging root\nin /\n" {
				t.Errorf("output %q, want the root's own marker and / as the working directory", got)
			}
			if data, err := os.ReadFile(filepath.Join(root, "etc/integrated")); err != nil || string(data) != "integrated\n" {
				t.Errorf("the command's change to its root: %q, %v", data, err)
			}
		})
	}
}

func TestSystemRootSpecsAreCheckedBeforeRunning(t *testing.T) {
	root := busyboxStaging(t)
	noShell := t.TempDir()
	for name, s := range map[string]Spec{
		"root without a shell":       {Mode: Bwrap, Root: noShell, Command: "true"},
		"relative root":              {Mode: Bwrap, Root: "relative/root", Command: "true"},
		"root and a build mode too":  {Mode: Bwrap, Root: root, BuildMode: stagingMode, Command: "true"},
		"root and a build directory": {Mode: None, Root: root, BuildDir: t.TempDir(), Command: "true"},
	} {
		if _, err := Run(context.Background(), s); err == nil {
			t.Errorf("%s: ran", name)
		}
	}
	if _, err := Run(context.Background(), Spec{Mode: Bwrap, Root: noShell, Command: "true"}); !errors.Is(err, ErrNoShell) {
		t.Errorf("root without a shell: %v, want ErrNoShell", err)
	}
}

// capabilityBits are the kernel's numbers of the capabilities a root
// worker's sandboxes keep.
var capabilityBits = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
	"CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
	"CAP_SYS_CHROOT": 18, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}

func TestARootWorkersSandboxKeepsOnlyTheCapabilitiesBuildsNeed(t *testing.T) {
	requireBwrap(t)
	if os.Geteuid() != 0 {
		t.Skip("only a worker running as root gives its sandboxes capabilities; this test runs as uid " + strconv.Itoa(os.Geteuid()))
	}
	var want uint64
	for _, c := range rootCapabilities {
		bit, ok := capabilityBits[c]
		if !ok {
			t.Fatalf("no bit known for %s", c)
		}
		want |= 1 << bit
	}
	s := bwrapSpec(t, bootstrapMode, "", `grep CapEff /proc/self/status
		if mknod "$DESTDIR/disk" b 8 0 2>/dev/null; then echo made a block device; fi
		chown 1:1 "$DESTDIR" && chmod 4755 "$DESTDIR" && echo still owns files`)
	got := runOK(t, s)
	wantLine := fmt.Sprintf("CapEff:\t%016x\n", want)
	if !strings.HasPrefix(got, wantLine) || strings.Contains(got, "made a block device") || !strings.Contains(got, "still owns files") {
		t.Errorf("a root sandbox printed %q; want %q (no CAP_MKNOD, CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH...), no device made, and files still owned and moded as root", got, wantLine)
	}
}
