package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

// The build modes the tests use.
const (
	stagingMode   = pb.BuildMode_BUILD_MODE_STAGING
	bootstrapMode = pb.BuildMode_BUILD_MODE_BOOTSTRAP
	testMode      = pb.BuildMode_BUILD_MODE_TEST
)

// hostSpec is a Spec for running command on the host.
func hostSpec(t *testing.T, command string) Spec {
	return Spec{
		Mode: None, BuildMode: stagingMode,
		BuildDir: t.TempDir(), DestDir: t.TempDir(),
		Env:       []string{"PATH=/usr/bin:/bin"},
		Command:   command,
		KillGrace: 200 * time.Millisecond,
	}
}

func TestRunReportsExitStatus(t *testing.T) {
	for command, want := range map[string]int{"true": 0, "exit 3": 3, "kill -KILL $$": 137} {
		res, err := Run(context.Background(), hostSpec(t, command))
		if err != nil || res.ExitCode != want {
			t.Errorf("%q: %+v, %v; want exit code %d and no error", command, res, err, want)
		}
	}
}

func TestRunStreamsStdoutAndStderrSeparately(t *testing.T) {
	var stdout, stderr bytes.Buffer
	s := hostSpec(t, "echo 1; echo 2 >&2; echo 3; echo 4 >&2")
	s.Stdout, s.Stderr = &stdout, &stderr
	if _, err := Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "1\n3\n" || stderr.String() != "2\n4\n" {
		t.Errorf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), "1\n3\n", "2\n4\n")
	}

	// One writer for both gets everything, in order.
	var both bytes.Buffer
	s.Stdout, s.Stderr = &both, &both
	if _, err := Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if both.String() != "1\n2\n3\n4\n" {
		t.Errorf("shared writer got %q; want %q", both.String(), "1\n2\n3\n4\n")
	}
}

func TestRunStreamsOutputBeforeCommandEnds(t *testing.T) {
	stdout, stderr := newWatch("to stdout"), newWatch("to stderr")
	s := hostSpec(t, "echo to stdout; echo to stderr >&2; exec sleep 1000")
	s.Stdout, s.Stderr = stdout, stderr
	ctx, cancel := context.WithCancel(context.Background())
	done := start(ctx, s)
	waitSeen(t, stdout)
	waitSeen(t, stderr)
	cancel()
	if o := wait(t, done); !errors.Is(o.err, ErrCancelled) {
		t.Errorf("after cancelling: %v; want ErrCancelled", o.err)
	}
}

func TestRunGivesOnlySpecEnvironmentInBuildDir(t *testing.T) {
	t.Setenv("DISTBUILD_WORKER_SECRET", "leaked")
	var stdout bytes.Buffer
	s := hostSpec(t, `echo "$FOO|${DISTBUILD_WORKER_SECRET-unset}"; pwd`)
	s.Env = []string{"FOO=bar baz"}
	s.Stdout = &stdout
	if _, err := Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if want := "bar baz|unset\n" + s.BuildDir + "\n"; stdout.String() != want {
		t.Errorf("output %q; want %q", stdout.String(), want)
	}
}

func TestRunCancelKillsWholeProcessGroup(t *testing.T) {
	for _, c := range []struct {
		name, command string
		procs         int
		exitCode      int
	}{
		{"stops on SIGTERM", "sleep 1000 & sleep 1000 & echo $$ started; wait", 3, 143},
		// Ignored signals are inherited, so the sleep ignores SIGTERM too.
		{"ignores SIGTERM", "trap '' TERM; sleep 1000 & echo $$ started; wait", 2, 137},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := newWatch("started")
			s := hostSpec(t, c.command)
			s.Stdout = out
			ctx, cancel := context.WithCancel(context.Background())
			done := start(ctx, s)
			waitSeen(t, out)
			pgid, _ := strconv.Atoi(strings.Fields(out.String())[0])
			group := "process group " + strconv.Itoa(pgid)
			waitProcesses(t, group+" before cancelling", inGroup(pgid), c.procs)
			cancel()
			o := wait(t, done)
			if !errors.Is(o.err, ErrCancelled) || !errors.Is(o.err, context.Canceled) || o.res.ExitCode != c.exitCode {
				t.Errorf("Run: %+v, %v; want ErrCancelled and exit code %d", o.res, o.err, c.exitCode)
			}
			waitProcesses(t, group+" after cancelling", inGroup(pgid), 0)
		})
	}
}

func TestRunKillsBackgroundProcessesLeftBehind(t *testing.T) {
	for _, c := range []struct{ name, command string }{
		{"holding output open", "sleep 1000 & echo $$"},
		{"detached from output", "sleep 1000 >/dev/null 2>&1 & echo $$"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout bytes.Buffer
			s := hostSpec(t, c.command)
			s.Stdout = &stdout
			res, err := Run(context.Background(), s)
			if err != nil || res.ExitCode != 0 {
				t.Errorf("Run: %+v, %v; want exit code 0, no error", res, err)
			}
			pgid, _ := strconv.Atoi(strings.TrimSpace(stdout.String()))
			waitProcesses(t, "process group "+strconv.Itoa(pgid)+" after the command", inGroup(pgid), 0)
		})
	}
}

func TestRunStopsCommandAtTimeout(t *testing.T) {
	s := hostSpec(t, "sleep 1000")
	s.Timeout = 300 * time.Millisecond
	_, err := Run(context.Background(), s)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrCancelled) || errors.Is(err, ErrStalled) {
		t.Errorf("Run: %v; want ErrTimeout alone", err)
	}
}

func TestRunStopsCommandWithoutOutput(t *testing.T) {
	var stdout bytes.Buffer
	s := hostSpec(t, "echo a; sleep 0.1; echo b; exec sleep 1000")
	s.Stdout = &stdout
	s.NoOutputTimeout = 300 * time.Millisecond
	_, err := Run(context.Background(), s)
	if !errors.Is(err, ErrStalled) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrCancelled) {
		t.Errorf("Run: %v; want ErrStalled alone", err)
	}
	if stdout.String() != "a\nb\n" {
		t.Errorf("output %q; want %q", stdout.String(), "a\nb\n")
	}
}

func TestRunOutputKeepsStalledCommandAlive(t *testing.T) {
	// Runs about 1.5 s, longer than NoOutputTimeout, but never silent
	// for more than 0.3 s of it.
	s := hostSpec(t, "for i in 1 2 3 4 5; do echo $i; sleep 0.3; done")
	s.NoOutputTimeout = time.Second
	res, err := Run(context.Background(), s)
	if err != nil || res.ExitCode != 0 {
		t.Errorf("Run: %+v, %v; want success", res, err)
	}
}

func TestRunRefusesBadSpecWithoutRunning(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"unknown sandbox", func(s *Spec) { s.Mode = "docker" }, `unknown sandbox "docker"`},
		{"unknown build mode", func(s *Spec) { s.BuildMode = pb.BuildMode_BUILD_MODE_UNSPECIFIED }, `unknown build mode BUILD_MODE_UNSPECIFIED`},
		{"empty command", func(s *Spec) { s.Command = " \n" }, "empty command"},
		{"relative build dir", func(s *Spec) { s.BuildDir = "build" }, `build directory "build" is not an absolute path`},
		{"missing DESTDIR", func(s *Spec) { s.DestDir = filepath.Join(file, "x") }, "DESTDIR"},
		{"file as DESTDIR", func(s *Spec) { s.DestDir = file }, "is not a directory"},
		{"staging mode without staging area", func(s *Spec) { s.Mode = Bwrap }, `staging area "" is not an absolute path`},
		{"negative timeout", func(s *Spec) { s.Timeout = -time.Second }, "negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			s := hostSpec(t, "echo ran > "+marker)
			c.change(&s)
			_, err := Run(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Run: %v; want an error saying %q", err, c.want)
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the command ran (%v); a bad Spec must run nothing", err)
			}
		})
	}
}

func TestParseModeAcceptsOnlyKnownModes(t *testing.T) {
	for in, want := range map[string]Mode{"none": None, "bwrap": Bwrap} {
		if got, err := ParseMode(in); got != want || err != nil {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Bwrap", "docker"} {
		if got, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) = %q; want an error", in, got)
		}
	}
	if err := Available("docker"); err == nil {
		t.Error(`Available("docker") succeeded; want an error`)
	}
	if err := Available(None); err != nil {
		t.Errorf("Available(None): %v", err)
	}
}

func TestPathsAreWhereTheCommandSeesThem(t *testing.T) {
	for _, c := range []struct {
		mode      Mode
		buildMode pb.BuildMode
		inSandbox bool
	}{
		{Bwrap, stagingMode, true},
		{Bwrap, bootstrapMode, false},
		{Bwrap, testMode, false},
		{None, stagingMode, false},
		{None, bootstrapMode, false},
	} {
		s := Spec{Mode: c.mode, BuildMode: c.buildMode, BuildDir: "/w/build", DestDir: "/w/dest"}
		build, dest := s.Paths()
		wantBuild, wantDest := "/w/build", "/w/dest"
		if c.inSandbox {
			wantBuild, wantDest = "/distbuild/build", "/distbuild/install"
		}
		if build != wantBuild || dest != wantDest || s.HostTools() == c.inSandbox {
			t.Errorf("%s %s: Paths %s, %s, HostTools %v; want %s, %s, %v",
				c.mode, c.buildMode, build, dest, s.HostTools(), wantBuild, wantDest, !c.inSandbox)
		}
	}
}

func TestStagingEnvPutsStagingAreaFirst(t *testing.T) {
	base := []string{"HOME=/tmp", "PATH=/old", "CPATH=", "PATH=/usr/bin:/bin"}
	got := StagingEnv("/s", base)
	want := []string{
		"HOME=/tmp", "PATH=/old", "CPATH=/s/usr/include", "PATH=/s/usr/bin:/s/bin:/usr/bin:/bin",
		"LIBRARY_PATH=/s/usr/lib:/s/lib",
		"PKG_CONFIG_PATH=/s/usr/lib/pkgconfig:/s/usr/share/pkgconfig",
		"LD_LIBRARY_PATH=/s/usr/lib:/s/lib",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("StagingEnv:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if base[3] != "PATH=/usr/bin:/bin" {
		t.Errorf("StagingEnv changed its base: %v", base)
	}
}
