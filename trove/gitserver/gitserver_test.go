package gitserver

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"distbuild/internal/gittest"
)

// git runs the real git client in dir with a private, empty configuration.
// serveRepo makes a bare repository holding one commit and serves its
// directory at /git/ on a loopback port.
func serveRepo(t *testing.T) (url, commit string) {
	t.Helper()
	root := t.TempDir()
	gittest.Run(t, root, "init", "--quiet", "--bare", "--initial-branch=main", "repo.git")
	work := t.TempDir()
	gittest.Run(t, work, "init", "--quiet", "--initial-branch=main")
	os.WriteFile(filepath.Join(work, "README"), []byte("hello from the trove\n"), 0o644)
	gittest.Run(t, work, "add", "README")
	gittest.Run(t, work, "commit", "--quiet", "-m", "first")
	gittest.Run(t, work, "push", "--quiet", filepath.Join(root, "repo.git"), "main")
	commit = strings.TrimSpace(gittest.Run(t, work, "rev-parse", "HEAD"))

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
	gittest.Run(t, dst, "clone", "--quiet", url, "clone")
	got, err := os.ReadFile(filepath.Join(dst, "clone", "README"))
	if err != nil || string(got) != "hello from the trove\n" {
		t.Fatalf("cloned README: %q, %v", got, err)
	}
	if head := strings.TrimSpace(gittest.Run(t, filepath.Join(dst, "clone"), "rev-parse", "HEAD")); head != commit {
		t.Fatalf("cloned HEAD %s, want %s", head, commit)
	}
}

func TestPushIsRefused(t *testing.T) {
	url, commit := serveRepo(t)
	dst := t.TempDir()
	gittest.Run(t, dst, "clone", "--quiet", url, "clone")
	work := filepath.Join(dst, "clone")
	os.WriteFile(filepath.Join(work, "README"), []byte("changed\n"), 0o644)
	gittest.Run(t, work, "commit", "--quiet", "-am", "second")
	out, err := gittest.Try(work, "push", "origin", "main")
	if err == nil {
		t.Fatalf("push over HTTP succeeded:\n%s", out)
	}
	if !strings.Contains(out, "403") {
		t.Errorf("push failed without saying it is forbidden:\n%s", out)
	}
	// The served repository is unchanged.
	check := t.TempDir()
	gittest.Run(t, check, "clone", "--quiet", url, "again")
	if head := strings.TrimSpace(gittest.Run(t, filepath.Join(check, "again"), "rev-parse", "HEAD")); head != commit {
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
