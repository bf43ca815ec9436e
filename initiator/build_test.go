package initiator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distbuild/initiator"
	"distbuild/internal/gittest"
)

// pushedCheckout makes the generated checkout a git repository whose HEAD
// is pushed to a bare "origin".
func pushedCheckout(t *testing.T) (dir, system string) {
	t.Helper()
	dir, tree := checkout(t)
	bare := filepath.Join(t.TempDir(), "defs.git")
	gittest.Run(t, dir, "init", "-q", "-b", "master")
	gittest.Run(t, dir, "add", "-A")
	gittest.Run(t, dir, "commit", "-q", "-m", "definitions")
	gittest.Run(t, dir, "init", "-q", "--bare", bare)
	gittest.Run(t, dir, "remote", "add", "origin", bare)
	gittest.Run(t, dir, "push", "-q", "origin", "master")
	return dir, tree.FullSystem
}

// The refusals happen before the controller is contacted, so an address
// where nothing listens proves no build was submitted.
const nowhere = "127.0.0.1:1"

func TestBuildRefusesUncommittedChangesToDefinitions(t *testing.T) {
	dir, system := pushedCheckout(t)
	morph := filepath.Join(dir, "strata", "stratum-001.morph")
	data, _ := os.ReadFile(morph)
	os.WriteFile(morph, append(data, []byte("# edited\n")...), 0o644)
	status, _, errOut := run("build", "--controller", nowhere, system)
	if status != initiator.ExitFailure || !strings.Contains(errOut, "uncommitted changes") || !strings.Contains(errOut, "strata/stratum-001.morph") || !strings.Contains(errOut, "commit them and push") {
		t.Errorf("exit %d: %s\nwant a refusal naming the changed morph and saying to commit and push", status, errOut)
	}

	gittest.Run(t, dir, "checkout", "--", ".")
	os.WriteFile(filepath.Join(dir, "strata", "new.morph"), []byte("name: new\n"), 0o644)
	if status, _, errOut := run("build", "--controller", nowhere, system); status != initiator.ExitFailure || !strings.Contains(errOut, "strata/new.morph") {
		t.Errorf("an untracked morph: exit %d: %s", status, errOut)
	}
	os.Remove(filepath.Join(dir, "strata", "new.morph"))
	// Files that are not definitions do not matter.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	if _, _, errOut := run("build", "--controller", nowhere, system); strings.Contains(errOut, "uncommitted") {
		t.Errorf("a stray non-morph file was treated as a change to the definitions: %s", errOut)
	}
}

func TestBuildRefusesAHeadThatIsNotOnTheRemote(t *testing.T) {
	dir, system := pushedCheckout(t)
	gittest.Run(t, dir, "commit", "-q", "--allow-empty", "-m", "not pushed")
	fetchURL := gittest.Run(t, dir, "remote", "get-url", "origin")
	status, _, errOut := run("build", "--controller", nowhere, system)
	// origin may be a trove, which refuses pushes: the refusal says where
	// the commit must go instead of telling the user to push to origin.
	for _, want := range []string{"is not on " + fetchURL + ` (the URL of remote "origin")`, "the upstream repository the trove serves or mirrors", "--remote NAME", "--repo URL"} {
		if status != initiator.ExitFailure || !strings.Contains(errOut, want) {
			t.Errorf("exit %d: %s\nwant a refusal saying %q", status, errOut, want)
		}
	}
	if strings.Contains(errOut, "git push origin") {
		t.Errorf("the refusal tells the user to push to origin, which may be a trove refusing pushes: %s", errOut)
	}

	// With a push URL of its own (the upstream), pushing to origin is right.
	upstream := filepath.Join(t.TempDir(), "upstream.git")
	gittest.Run(t, dir, "remote", "set-url", "--push", "origin", upstream)
	status, _, errOut = run("build", "--controller", nowhere, system)
	if want := "git push origin HEAD pushes to " + upstream; status != initiator.ExitFailure || !strings.Contains(errOut, want) || !strings.Contains(errOut, "once "+fetchURL+" has it") {
		t.Errorf("exit %d: %s\nwant a refusal saying %q and to build once %s has the commit", status, errOut, want, fetchURL)
	}

	status, _, errOut = run("build", "--controller", nowhere, "--repo", fetchURL, system)
	if want := "is not on " + fetchURL + " (given with --repo)"; status != initiator.ExitFailure || !strings.Contains(errOut, want) {
		t.Errorf("--repo: exit %d: %s\nwant a refusal saying %q", status, errOut, want)
	}
}

func TestBuildRefusesAnUnreachableRemote(t *testing.T) {
	dir, system := pushedCheckout(t)
	gittest.Run(t, dir, "remote", "set-url", "origin", filepath.Join(t.TempDir(), "missing.git"))
	if status, _, errOut := run("build", "--controller", nowhere, system); status != initiator.ExitFailure || !strings.Contains(errOut, "cannot list the refs of") {
		t.Errorf("exit %d: %s\nwant a clear failure to reach the remote", status, errOut)
	}
}

func TestBuildSubmitsAPushedHeadOfAnAncestorOfTheRemote(t *testing.T) {
	dir, system := pushedCheckout(t)
	// HEAD behind the remote's branch is still fetchable by the controller.
	gittest.Run(t, dir, "commit", "-q", "--allow-empty", "-m", "later")
	gittest.Run(t, dir, "push", "-q", "origin", "master")
	gittest.Run(t, dir, "checkout", "-q", "HEAD~1")
	status, _, errOut := run("build", "--controller", nowhere, system)
	// It gets as far as the controller, which is not there.
	if status != initiator.ExitFailure || !strings.Contains(errOut, "controller") || strings.Contains(errOut, "is not on") {
		t.Errorf("exit %d: %s\nwant the checks to pass and the controller to be unreachable", status, errOut)
	}
}
