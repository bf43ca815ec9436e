// Package gitserver serves a directory of bare git repositories read-only
// over git's smart HTTP protocol, so a build farm needs no git server other
// than its trove. It runs the system's own `git http-backend` as a CGI
// program rather than reimplementing the protocol, and refuses pushes
// itself rather than trusting git's configuration to.
package gitserver

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// New returns a handler serving the bare repositories under root (as
// prefix/<name>.git) to git clients. prefix is the URL path the handler is
// mounted at, without a trailing slash, e.g. "/git". Every repository
// under root is exported; pushes are refused with 403 Forbidden.
func New(root, prefix string, logger hclog.Logger) (http.Handler, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if info, err := os.Stat(abs); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("git repository directory %s is not a directory", root)
	}
	backend, err := httpBackendPath()
	if err != nil {
		return nil, err
	}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Root: prefix,
		Env: []string{
			"GIT_PROJECT_ROOT=" + abs,
			"GIT_HTTP_EXPORT_ALL=1",
		},
		Logger: logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		Stderr: logger.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
	}
	return &readOnly{next: cgiHandler}, nil
}

// httpBackendPath finds git-http-backend where this git installs its
// helper programs, which is not on PATH.
func httpBackendPath() (string, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", fmt.Errorf("finding git's exec path (is git installed?): %w", err)
	}
	return filepath.Join(string(bytes.TrimSpace(out)), "git-http-backend"), nil
}

// readOnly lets fetches through and refuses pushes: a push is both the
// receive-pack advertisement (info/refs?service=git-receive-pack) and the
// receive-pack request itself.
type readOnly struct{ next http.Handler }

func (h *readOnly) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("service") == "git-receive-pack" || strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
		http.Error(w, "this git server is read-only: pushes are refused", http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost: // POST carries upload-pack negotiation
		h.next.ServeHTTP(w, r)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
