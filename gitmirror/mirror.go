package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// exists says whether the mirror is in place; a clone in progress is not.
func (r *Repo) exists() bool {
	info, err := os.Stat(r.dir)
	return err == nil && info.IsDir()
}

// hasCommit says whether the mirror holds commit as a commit object.
func (r *Repo) hasCommit(ctx context.Context, commit string) bool {
	_, err := r.commitDate(ctx, commit)
	return err == nil
}

func (r *Repo) objectType(ctx context.Context, oid string) (string, error) {
	out, err := runGit(ctx, r.dir, "cat-file", "-t", oid)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// clone makes the mirror in a temporary directory and renames it into place,
// so an interrupted clone is never mistaken for a mirror. The temporary name
// is fixed per mirror: the caller holds the mirror's lock, so anything found
// there is left over from a crash and is removed.
//
// Objects are never pruned from a mirror (gc.pruneExpire=never): a commit
// fetched by id, or one a force-push orphaned, is still what an old build
// names and what work trees made by Checkout borrow objects from.
func (r *Repo) clone(ctx context.Context) error {
	start := time.Now()
	tmp := r.cache.path(r.url, ".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("cloning %s: removing leftover %s: %w", r.url, tmp, err)
	}
	if _, err := runGit(ctx, "", "clone", "--mirror", "--quiet", "--", r.url, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("cloning %s: %w", r.url, err)
	}
	if _, err := runGit(ctx, tmp, "config", "gc.pruneExpire", "never"); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("configuring the mirror of %s: %w", r.url, err)
	}
	if err := os.Rename(tmp, r.dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("cloning %s: %w", r.url, err)
	}
	r.cache.log.Info("cloned mirror", "url", r.url, "duration", time.Since(start))
	return nil
}

// fetch updates the mirror from its upstream: every ref (the mirror's
// refspec) when commit is "", else just that commit. Refs deleted upstream
// are kept (--no-prune), which keeps their commits reachable for builds that
// still name them.
func (r *Repo) fetch(ctx context.Context, commit string) error {
	start := time.Now()
	args := []string{"fetch", "--quiet", "--no-prune", "--no-write-fetch-head", "origin"}
	doing := "fetching " + r.url
	if commit != "" {
		args = append(args, commit)
		doing = "fetching commit " + commit + " from " + r.url
	}
	if _, err := runGit(ctx, r.dir, args...); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	r.cache.log.Info("fetched", "url", r.url, "commit", commit, "duration", time.Since(start))
	return nil
}

// CommitTime returns commit's committer date, which a build uses as its
// SOURCE_DATE_EPOCH: the same for every build of that commit, on any
// machine, so tools that stamp the time stamp the same one.
func (r *Repo) CommitTime(ctx context.Context, commit string) (time.Time, error) {
	if err := checkCommit(commit); err != nil {
		return time.Time{}, err
	}
	return r.commitDate(ctx, commit)
}

// commitDate reads commit from the mirror, once per handle: whether it is
// there as a commit, and its committer date.
func (r *Repo) commitDate(ctx context.Context, commit string) (time.Time, error) {
	r.mu.Lock()
	date, ok := r.dates[commit]
	r.mu.Unlock()
	if ok {
		return date, nil
	}
	out, err := runGit(ctx, r.dir, "cat-file", "commit", commit)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading commit %s of %s: %w", commit, r.url, err)
	}
	date, err = committerDate(out)
	if err != nil {
		return time.Time{}, fmt.Errorf("commit %s of %s: %w", commit, r.url, err)
	}
	r.mu.Lock()
	if r.dates == nil {
		r.dates = map[string]time.Time{}
	}
	r.dates[commit] = date
	r.mu.Unlock()
	return date, nil
}

// committerDate reads the committer line of a raw commit object:
// "committer Name <email> 1700000000 +0000".
func committerDate(raw []byte) (time.Time, error) {
	for line := range strings.Lines(string(raw)) {
		if line == "\n" {
			break // the headers end; the message follows
		}
		if rest, ok := strings.CutPrefix(line, "committer "); ok {
			fields := strings.Fields(rest[strings.LastIndexByte(rest, '>')+1:])
			if len(fields) == 2 {
				if secs, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					return time.Unix(secs, 0).UTC(), nil
				}
			}
		}
	}
	return time.Time{}, errors.New("no readable committer date")
}
