package main

import (
	"strings"
	"testing"
)

func TestHelpDocumentsStallAndLogFlagsWithDefaults(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"--help"}, &stderr); code != 0 {
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
		code := run(append([]string{"--work-dir", t.TempDir()}, c.args...), &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 saying %q", c.args, code, stderr.String(), c.want)
		}
	}
}
