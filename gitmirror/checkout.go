package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Submodule names a submodule a chunk's build needs: the gitlink at Path (in
// the chunk's own tree, slash-separated) is checked out from URL. Callers
// give the URL rather than this package reading .gitmodules, so definitions
// can point submodules at the farm's own git server.
type Submodule struct {
	Path string
	URL  string
}

// Checkout writes commit into dir as an ordinary git work tree with HEAD
// detached at commit, so builds that run `git describe` or read tags work.
// Each submodule is checked out at the commit its gitlink records, from its
// own mirror (fetched if needed); submodules of submodules are not.
//
// dir must be empty or not exist. Everything is checked first: a bad commit,
// a path that is not a gitlink in the tree or an unreachable submodule leaves
// dir untouched. If git fails later, what was written to dir is removed.
//
// Work trees borrow objects from the mirrors (git clone --shared), so writing
// one costs only its files; this is safe because mirrors never drop objects,
// and a work tree is meant to live as long as one build.
func (r *Repo) Checkout(ctx context.Context, commit, dir string, submodules []Submodule) error {
	if err := checkCommit(commit); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for _, sm := range submodules {
		if err := checkSubmodulePath(sm.Path); err != nil {
			return err
		}
		if err := checkURL(sm.URL); err != nil {
			return fmt.Errorf("submodule %s: %w", sm.Path, err)
		}
		if seen[sm.Path] {
			return fmt.Errorf("submodule %s listed twice", sm.Path)
		}
		seen[sm.Path] = true
	}
	if dir == "" {
		return errors.New("checkout directory not set")
	}
	existed, err := checkEmptyDir(dir)
	if err != nil {
		return err
	}
	if !r.hasCommit(ctx, commit) {
		return fmt.Errorf("checking out commit %s of %s: not in the mirror", commit, r.url)
	}

	subRepos := make([]*Repo, len(submodules))
	subCommits := make([]string, len(submodules))
	for i, sm := range submodules {
		if subCommits[i], err = r.gitlink(ctx, commit, sm.Path); err != nil {
			return err
		}
		if subRepos[i], err = r.cache.Ensure(ctx, sm.URL, subCommits[i]); err != nil {
			return fmt.Errorf("submodule %s: %w", sm.Path, err)
		}
	}

	start := time.Now()
	err = r.workTree(ctx, commit, dir)
	for i, sm := range submodules {
		if err != nil {
			break
		}
		err = subRepos[i].workTree(ctx, subCommits[i], filepath.Join(dir, filepath.FromSlash(sm.Path)))
	}
	if err != nil {
		removeCheckout(dir, existed)
		return err
	}
	r.cache.log.Debug("checked out", "url", r.url, "commit", commit, "dir", dir, "duration", time.Since(start))
	return nil
}

// checkEmptyDir refuses a directory with anything in it, so a checkout never
// mixes with (or, on failure, deletes) files it did not write. It reports
// whether dir exists.
func checkEmptyDir(dir string) (existed bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("checkout directory: %w", err)
	case len(entries) > 0:
		return true, fmt.Errorf("checkout directory %s is not empty", dir)
	}
	return true, nil
}

// gitlink returns the commit recorded for the submodule at p in commit's tree.
func (r *Repo) gitlink(ctx context.Context, commit, p string) (string, error) {
	out, err := runGit(ctx, r.dir, "ls-tree", "-z", commit, "--", p)
	if err != nil {
		return "", fmt.Errorf("submodule %s: listing commit %s of %s: %w", p, commit, r.url, err)
	}
	// One record, "<mode> <type> <oid>\t<path>", when p is in the tree.
	meta, name, _ := strings.Cut(strings.TrimSuffix(string(out), "\x00"), "\t")
	fields := strings.Fields(meta)
	if name != p || len(fields) != 3 {
		return "", fmt.Errorf("submodule %s: no such path in commit %s of %s", p, commit, r.url)
	}
	if fields[1] != "commit" || !isCommitID(fields[2]) {
		return "", fmt.Errorf("submodule %s: is a %s, not a submodule, in commit %s of %s", p, fields[1], commit, r.url)
	}
	return fields[2], nil
}

// workTree clones the mirror into dir without copying objects and checks out
// commit there.
func (r *Repo) workTree(ctx context.Context, commit, dir string) error {
	if _, err := runGit(ctx, "", "clone", "--quiet", "--shared", "--no-checkout", "--", r.dir, dir); err != nil {
		return fmt.Errorf("checking out %s of %s into %s: %w", commit, r.url, dir, err)
	}
	if _, err := runGit(ctx, dir, "checkout", "--quiet", "--detach", commit, "--"); err != nil {
		return fmt.Errorf("checking out %s of %s into %s: %w", commit, r.url, dir, err)
	}
	return nil
}

// removeCheckout undoes a failed checkout: dir goes if Checkout made it,
// else only its contents, which Checkout wrote into an empty directory.
func removeCheckout(dir string, existed bool) {
	if !existed {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
