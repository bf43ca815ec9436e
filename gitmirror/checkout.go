package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
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

// workTree makes dir a work tree of commit that borrows the mirror's
// objects, as `git clone --shared --no-checkout` and `git checkout` would,
// but writes the repository's few files itself: the clone (with its
// upload-pack child and template copying) cost twice as much as the
// checkout, and every step of a farm pays it. The result is the same: the
// mirror's branches as origin's remote-tracking branches, its tags (for
// `git describe`), origin pointing at the mirror, HEAD detached at commit.
func (r *Repo) workTree(ctx context.Context, commit, dir string) error {
	fail := func(err error) error { return fmt.Errorf("checking out %s of %s into %s: %w", commit, r.url, dir, err) }
	refs, err := r.refs()
	if err != nil {
		return fail(err)
	}
	objects, err := filepath.Abs(filepath.Join(r.dir, "objects"))
	if err != nil {
		return fail(err)
	}
	origin, err := filepath.Abs(r.dir)
	if err != nil {
		return fail(err)
	}
	var packed strings.Builder
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		switch {
		case strings.HasPrefix(name, "refs/heads/"):
			fmt.Fprintf(&packed, "%s refs/remotes/origin/%s\n", refs[name], strings.TrimPrefix(name, "refs/heads/"))
		case strings.HasPrefix(name, "refs/tags/"):
			fmt.Fprintf(&packed, "%s %s\n", refs[name], name)
		}
	}
	gitDir := filepath.Join(dir, ".git")
	files := []struct{ name, content string }{
		{"HEAD", "ref: refs/heads/master\n"},
		{"config", "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n" +
			"[remote \"origin\"]\n\turl = " + origin + "\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"},
		{"objects/info/alternates", objects + "\n"},
		{"packed-refs", packed.String()},
	}
	for _, d := range []string{"objects/info", "objects/pack", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(gitDir, d), 0o755); err != nil {
			return fail(err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(gitDir, f.name), []byte(f.content), 0o644); err != nil {
			return fail(err)
		}
	}
	if _, err := runGit(ctx, dir, "checkout", "--quiet", "--detach", commit, "--"); err != nil {
		return fail(err)
	}
	return nil
}

// refs reads the mirror's refs, loose ones over packed ones, without
// running git. A fetch running meanwhile replaces files by renaming, so
// each ref read is its old value or its new one.
func (r *Repo) refs() (map[string]string, error) {
	refs := map[string]string{}
	data, err := os.ReadFile(filepath.Join(r.dir, "packed-refs"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for line := range strings.Lines(string(data)) {
		oid, name, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && isCommitID(oid) && strings.HasPrefix(name, "refs/") {
			refs[name] = oid
		}
	}
	root := filepath.Join(r.dir, "refs")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return nil // renamed away meanwhile
		}
		if oid := strings.TrimSpace(string(content)); isCommitID(oid) {
			rel, _ := filepath.Rel(r.dir, p)
			refs[filepath.ToSlash(rel)] = oid
		}
		return nil
	})
	return refs, err
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
