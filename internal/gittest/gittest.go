// Package gittest runs the real git for tests, the way users run it but
// hermetic: the developer's and the system's git configuration are not
// read (a ~/.gitconfig that signs commits or rewrites URLs would change
// what a test sees), and commits are made by a fixed identity.
package gittest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Env is the environment git runs with: the process's own, without
// configuration files, with a fixed author and committer, and never
// prompting for credentials.
func Env() []string {
	return append(os.Environ(),
		"GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.invalid",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.invalid")
}

// Try runs git with args in dir and returns its combined output, for tests
// that expect git to fail.
func Try(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Run runs git with args in dir and returns its output without surrounding
// white space; the test fails, with git's output, if git does.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Try(dir, args...)
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(out)
}
