package gitserver

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// git runs the real git client in dir with a private, empty configuration.
func git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.invalid",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.invalid")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := git(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// serveRepo makes a bare repository holding one commit and serves its
// directory at /git/ on a loopback port.
func serveRepo(t *testing.T) (url, commit string) {
	t.Helper()
	root := t.TempDir()
	mustGit(t, root, "init", "--quiet", "--bare", "--initial-branch=main", "repo.git")
	work := t.TempDir()
	mustGit(t, work, "init", "--quiet", "--initial-branch=main")
	os.WriteFile(filepath.Join(work, "README"), []byte("hello from the trove\n"), 0o644)
	mustGit(t, work, "add", "README")
	mustGit(t, work, "commit", "--quiet", "-m", "first")
	mustGit(t, work, "push", "--quiet", filepath.Join(root, "repo.git"), "main")
	commit = strings.TrimSpace(mustGit(t, work, "rev-parse", "HEAD"))

	h, err := New(root, "/git", hclog.New(&hclog.LoggerOptions{Output: t.Output()}))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/git/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/git/repo.git", commit
}

func TestCloneOverHTTP(t *testing.T) {
	url, commit := serveRepo(t)
	dst := t.TempDir()
	mustGit(t, dst, "clone", "--quiet", url, "clone")
	got, err := os.ReadFile(filepath.Join(dst, "clone", "README"))
	if err != nil || string(got) != "hello from the trove\n" {
		t.Fatalf("cloned README: %q, %v", got, err)
	}
	if head := strings.TrimSpace(mustGit(t, filepath.Join(dst, "clone"), "rev-parse", "HEAD")); head != commit {
		t.Fatalf("cloned HEAD %s, want %s", head, commit)
	}
}

func TestPushIsRefused(t *testing.T) {
	url, commit := serveRepo(t)
	dst := t.TempDir()
	mustGit(t, dst, "clone", "--quiet", url, "clone")
	work := filepath.Join(dst, "clone")
	os.WriteFile(filepath.Join(work, "README"), []byte("changed\n"), 0o644)
	mustGit(t, work, "commit", "--quiet", "-am", "second")
	out, err := git(t, work, "push", "origin", "main")
	if err == nil {
		t.Fatalf("push over HTTP succeeded:\n%s", out)
	}
	if !strings.Contains(out, "403") {
		t.Errorf("push failed without saying it is forbidden:\n%s", out)
	}
	// The served repository is unchanged.
	check := t.TempDir()
	mustGit(t, check, "clone", "--quiet", url, "again")
	if head := strings.TrimSpace(mustGit(t, filepath.Join(check, "again"), "rev-parse", "HEAD")); head != commit {
		t.Fatalf("after a refused push the served HEAD is %s, want %s", head, commit)
	}
}

func TestOnlyFetchRequestsReachGit(t *testing.T) {
	url, _ := serveRepo(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/info/refs?service=git-receive-pack", http.StatusForbidden},
		{"POST", "/git-receive-pack", http.StatusForbidden},
		{"PUT", "/HEAD", http.StatusMethodNotAllowed},
		{"DELETE", "/HEAD", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

func TestMissingRepositoryDirectoryIsRefused(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "absent"), "/git", nil); err == nil {
		t.Fatal("New accepted a directory that does not exist")
	}
}
