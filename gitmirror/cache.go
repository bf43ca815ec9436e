package gitmirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Cache is the set of mirrors under one directory. Builds on one machine
// share it, so a repository is cloned once and later only fetched from. It is
// safe for concurrent use, and several processes may share the directory.
type Cache struct {
	dir   string
	log   hclog.Logger
	locks *mirrorLocks
}

// Repo is one repository's mirror, known to hold whatever commit it was
// returned for by Ensure. It is what reading and checking out work from, so
// they never go to the network.
type Repo struct {
	cache *Cache
	url   string
	dir   string

	// dates holds the commits this handle has found in the mirror, with
	// their committer dates: a mirror never loses a commit, so checking
	// once is enough, and each check spared is a git process less per
	// step.
	mu    sync.Mutex
	dates map[string]time.Time
}

// New opens the cache in dir, creating the directory if needed. It fails at
// once if git is not installed, rather than on the first build.
func New(dir string, logger hclog.Logger) (*Cache, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("git mirror cache needs git: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("git mirror cache directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("creating git mirror cache directory: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Cache{dir: abs, log: logger, locks: newMirrorLocks()}, nil
}

// Ensure returns the mirror of url holding commit, cloning the repository the
// first time it is asked for and fetching only when commit is missing. A
// commit no branch or tag names upstream is fetched by its id, which servers
// allow for reachable commits with protocol v2.
//
// Only one clone or fetch runs at a time per repository (also across
// processes sharing the directory); a hit needs no lock at all, because a
// mirror appears under its final name only once completely cloned.
func (c *Cache) Ensure(ctx context.Context, url, commit string) (*Repo, error) {
	if err := checkURL(url); err != nil {
		return nil, err
	}
	if err := checkCommit(commit); err != nil {
		return nil, err
	}
	r := &Repo{cache: c, url: url, dir: c.path(url, ".git")}
	if r.exists() && r.hasCommit(ctx, commit) {
		c.log.Debug("commit already mirrored", "url", url, "commit", commit)
		return r, nil
	}

	unlock, err := c.locks.lock(ctx, c.path(url, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("waiting for the mirror of %s: %w", url, err)
	}
	defer unlock()

	// Another goroutine or process may have done the work while we waited.
	if !r.exists() {
		if err := r.clone(ctx); err != nil {
			return nil, err
		}
	} else if !r.hasCommit(ctx, commit) {
		if err := r.fetch(ctx, ""); err != nil {
			return nil, err
		}
	}
	if r.hasCommit(ctx, commit) {
		return r, nil
	}
	if err := r.fetch(ctx, commit); err != nil {
		return nil, err
	}
	switch typ, err := r.objectType(ctx, commit); {
	case err != nil:
		return nil, fmt.Errorf("commit %s not in %s even after fetching it: %w", commit, url, err)
	case typ != "commit":
		return nil, fmt.Errorf("%s in %s is a %s, not a commit", commit, url, typ)
	}
	return r, nil
}

// path names a file of url's mirror in the cache directory: the mirror
// itself (".git"), its lock (".lock") or its clone in progress (".tmp").
func (c *Cache) path(url, suffix string) string {
	return filepath.Join(c.dir, mirrorName(url)+suffix)
}

// mirrorName derives a directory name from url that is unique (a hash of
// the exact URL) and readable (the URL's last path element, reduced to safe
// characters) without ever letting URL text shape the path.
func mirrorName(url string) string {
	sum := sha256.Sum256([]byte(url))
	base := strings.TrimSuffix(path.Base(strings.TrimRight(url, "/")), ".git")
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, base)
	safe = strings.Trim(safe[:min(len(safe), 40)], ".")
	if safe == "" {
		return hex.EncodeToString(sum[:16])
	}
	return hex.EncodeToString(sum[:16]) + "-" + safe
}
