package gitmirror

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// pinnedConfig overrides settings from the user's git config that would make
// a checkout differ from the commit (line-ending conversion) or run code
// nobody asked for (hooks, a file-system monitor).
var pinnedConfig = []string{
	"-c", "core.autocrlf=false",
	"-c", "core.hooksPath=" + os.DevNull,
	"-c", "core.fsmonitor=false",
}

// repoLocatingVars are the variables `git rev-parse --local-env-vars` lists:
// inherited from a surrounding git (a hook, say), they would make every
// command here act on that repository instead.
var repoLocatingVars = map[string]bool{
	"GIT_ALTERNATE_OBJECT_DIRECTORIES": true,
	"GIT_CONFIG":                       true,
	"GIT_CONFIG_PARAMETERS":            true,
	"GIT_CONFIG_COUNT":                 true,
	"GIT_OBJECT_DIRECTORY":             true,
	"GIT_DIR":                          true,
	"GIT_WORK_TREE":                    true,
	"GIT_IMPLICIT_WORK_TREE":           true,
	"GIT_GRAFT_FILE":                   true,
	"GIT_INDEX_FILE":                   true,
	"GIT_NO_REPLACE_OBJECTS":           true,
	"GIT_REPLACE_REF_BASE":             true,
	"GIT_PREFIX":                       true,
	"GIT_SHALLOW_FILE":                 true,
	"GIT_COMMON_DIR":                   true,
}

// gitEnv is the environment of every git process: the caller's, minus
// variables that would redirect git to another repository, plus the settings
// that keep git from prompting or reading /etc/gitconfig. Pathspecs are
// literal so that a submodule path is never read as a glob.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if repoLocatingVars[name] || strings.HasPrefix(name, "GIT_CONFIG_KEY_") || strings.HasPrefix(name, "GIT_CONFIG_VALUE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=true",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_LITERAL_PATHSPECS=1",
	)
}

// gitCommand prepares git with args in dir ("" for the current directory).
// git runs in a session of its own: it has no terminal to prompt on, and
// ending ctx kills the whole process group, including the transport helpers
// and index-pack a clone starts.
func gitCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append(append([]string(nil), pinnedConfig...), args...)...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runGit runs git to completion and returns its standard output. The error
// is git's own message (its trimmed standard error), or the context's error
// when ctx ended first, so callers only add what they were doing.
func runGit(ctx context.Context, dir string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := gitCommand(ctx, dir, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, gitFailure(ctx, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// maxErrorText caps how much of git's standard error goes into an error, so
// a chatty server cannot make log lines unbounded.
const maxErrorText = 2000

func gitFailure(ctx context.Context, err error, stderr string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := strings.TrimSpace(stderr)
	if msg == "" {
		return err
	}
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "…"
	}
	return errors.New(msg)
}
