package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestHelpDocumentsStallAndLogFlagsWithDefaults(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"--help"}, &stderr, "host1", "x86_64"); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, want := range []string{
		"--stall-timeout duration", "(default 30m0s)",
		"--transfer-stall-timeout duration", "(default 10m0s)",
		"--log-limit size", "(default 64MiB)",
		"setup failure, which the controller retries",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--help does not say %q:\n%s", want, stderr.String())
		}
	}
}

func TestBadStallAndLogFlagsAreRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--stall-timeout", "-1s"}, "cannot be negative"},
		{[]string{"--transfer-stall-timeout", "-5m"}, "cannot be negative"},
		{[]string{"--log-limit", "12Q"}, `invalid argument "12Q" for "--log-limit" flag`},
		{[]string{"--log-limit", "-1"}, `invalid argument "-1" for "--log-limit" flag`},
	} {
		var stderr strings.Builder
		code := run(append([]string{"--work-dir", t.TempDir()}, c.args...), &stderr, "host1", "x86_64")
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 saying %q", c.args, code, stderr.String(), c.want)
		}
	}
}

func TestHelpExplainsWorkerKey(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"--help"}, &stderr, "host1", "x86_64"); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, want := range []string{
		"worker key --work-dir DIR", "prints the worker's ed25519 public key",
		"'controller worker add NAME --public-key KEY'",
		`--name string`, `(default "host1")`, `--arch string`, `(default "x86_64")`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--help does not say %q:\n%s", want, stderr.String())
		}
	}
}

func TestOnlyFlagsWithoutADefaultAreRequired(t *testing.T) {
	for _, c := range []struct {
		args       []string
		host, arch string
		want       string
	}{
		// --name and --arch default to the host's; --controller and
		// --cache have defaults too.
		{nil, "host1", "x86_64", "worker: --work-dir DIR is required: the directory for build directories, git mirrors and cached artifacts (see worker --help)\n"},
		{[]string{"--work-dir", "/w"}, "", "x86_64", "worker: --name is required: the host name could not be read to default to (see worker --help)\n"},
		{[]string{"--work-dir", "/w"}, "host1", "", "worker: --arch is required: " + runtime.GOARCH + " machines have no default architecture name (see worker --help)\n"},
		{[]string{"--work-dir", "/w", "--name", "", "--arch="}, "host1", "x86_64", "worker: --name cannot be empty; --arch cannot be empty (see worker --help)\n"},
		{[]string{"--work-dir", "/w", "key"}, "host1", "x86_64", "worker: unexpected argument \"key\": the worker takes only flags (see worker --help)\n"},
	} {
		var stderr strings.Builder
		if code := run(c.args, &stderr, c.host, c.arch); code != 2 || stderr.String() != c.want {
			t.Errorf("%v (host %q, arch %q): exit %d, %q; want exit 2 and %q", c.args, c.host, c.arch, code, stderr.String(), c.want)
		}
	}
}
