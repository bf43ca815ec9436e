package main

import (
	"strings"
	"testing"
)

func TestAFlagMistakeIsSaidNotSwallowed(t *testing.T) {
	code, _, stderr := runBinary(t, controllerBinary(t), "--state-dir", t.TempDir(), "--lissten", "1")
	if code != 2 || !strings.Contains(stderr, "unknown flag: --lissten") || !strings.Contains(stderr, "controller --help") {
		t.Errorf("exit %d, stderr %q; want 2 and the unknown flag named, with where to look", code, stderr)
	}
}
