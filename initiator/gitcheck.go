package initiator

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// git runs a git command in dir and returns its trimmed stdout.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), msg)
	}
	return strings.TrimSpace(out.String()), nil
}

// checkoutState is what a build request needs from the definitions
// checkout: where the controller can fetch it, and which commit to build.
type checkoutState struct {
	repoURL string
	commit  string
}

// inspectCheckout finds the repository URL and HEAD commit and refuses
// states in which the controller would build something other than what the
// user sees: uncommitted changes to definitions, or a HEAD the controller
// cannot fetch.
func inspectCheckout(ctx context.Context, root, remote, repoURL string) (*checkoutState, error) {
	head, err := git(ctx, root, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return nil, fmt.Errorf("%s has no commits to build: %w", root, err)
	}
	dirty, err := git(ctx, root, "status", "--porcelain", "--untracked-files=all", "--", "*.morph", "VERSION", "DEFAULTS")
	if err != nil {
		return nil, err
	}
	if dirty != "" {
		return nil, fmt.Errorf("the definitions have uncommitted changes, which the build would not see:\n%s\ncommit them and push the commit, then build again", indent(dirty))
	}
	fromRemote := repoURL == ""
	if fromRemote {
		if repoURL, err = git(ctx, root, "remote", "get-url", remote); err != nil {
			return nil, fmt.Errorf("cannot find the URL of remote %q (use --remote NAME or --repo URL): %w", remote, err)
		}
	}
	onRemote, err := commitOnRemote(ctx, root, repoURL, head)
	if err != nil {
		return nil, err
	}
	if !onRemote {
		return nil, notOnRemote(ctx, root, head, repoURL, remote, fromRemote)
	}
	return &checkoutState{repoURL: repoURL, commit: head}, nil
}

// notOnRemote explains that HEAD cannot be built until the repository the
// controller fetches from has it. That URL is often a trove's, which
// refuses pushes, so "push to origin" would be wrong advice: the commit
// must be pushed upstream, to the repository the trove serves or mirrors.
// Only when the remote has a push URL of its own (remote.NAME.pushurl,
// typically that upstream) does git push REMOTE HEAD do the right thing.
func notOnRemote(ctx context.Context, root, head, repoURL, remote string, fromRemote bool) error {
	source := "given with --repo"
	if fromRemote {
		source = fmt.Sprintf("the URL of remote %q", remote)
	}
	push := "Push the commit to the repository at that URL or, if that is a trove (troves refuse pushes), " +
		"to the upstream repository the trove serves or mirrors"
	if fromRemote {
		if pushURL, err := git(ctx, root, "remote", "get-url", "--push", remote); err == nil && pushURL != repoURL {
			push = fmt.Sprintf("Push the commit upstream (git push %s HEAD pushes to %s)", remote, pushURL)
		}
	}
	return fmt.Errorf("HEAD (%s) is not on %s (%s), where the controller fetches the definitions from.\n"+
		"%s; then build again once %s has it.\n"+
		"To build from another repository that has the commit, name it with --remote NAME (a remote of this checkout) or --repo URL.",
		head[:12], repoURL, source, push, repoURL)
}

// commitOnRemote reports whether commit is reachable from some ref of the
// repository at url: it is one of the refs, or an ancestor of a ref whose
// commit is present locally.
func commitOnRemote(ctx context.Context, root, url, commit string) (bool, error) {
	out, err := git(ctx, root, "ls-remote", "--", url)
	if err != nil {
		return false, fmt.Errorf("cannot list the refs of %s: %w", url, err)
	}
	for _, line := range strings.Split(out, "\n") {
		sha, _, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if sha == commit {
			return true, nil
		}
		if _, err := git(ctx, root, "cat-file", "-e", sha+"^{commit}"); err != nil {
			continue // not fetched locally; cannot be the one the user pushed
		}
		if _, err := git(ctx, root, "merge-base", "--is-ancestor", commit, sha); err == nil {
			return true, nil
		}
	}
	return false, nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
