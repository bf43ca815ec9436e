package gitmirror

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ResolveRef asks the repository at url which commit ref names now, so a
// build records an exact commit even when its definitions name a branch.
// ref is looked up as a branch (refs/heads/ref), then a tag (refs/tags/ref,
// peeled to the commit an annotated tag points at), then as the full ref name
// given (e.g. "refs/heads/x" or "HEAD"); the first match wins. A full commit
// id is returned as it is without asking the server, so callers may pass
// any ref a morph holds. The mirror is not touched: Ensure fetches the
// commit when it is needed.
func (c *Cache) ResolveRef(ctx context.Context, url, ref string) (string, error) {
	if err := checkURL(url); err != nil {
		return "", err
	}
	if isCommitID(ref) {
		return ref, nil
	}
	if err := checkRef(ref); err != nil {
		return "", err
	}
	start := time.Now()
	// ls-remote matches patterns against the end of ref names, and shows an
	// annotated tag's peeled commit only when asked for "ref^{}" too.
	out, err := runGit(ctx, "", "ls-remote", "--", url, ref, ref+"^{}")
	if err != nil {
		return "", fmt.Errorf("resolving %q in %s: %w", ref, url, err)
	}
	refs := parseLsRemote(out)
	for _, name := range []string{"refs/heads/" + ref, "refs/tags/" + ref, ref} {
		for _, candidate := range []string{name + "^{}", name} {
			if commit, ok := refs[candidate]; ok {
				c.log.Debug("resolved ref", "url", url, "ref", ref, "commit", commit, "duration", time.Since(start))
				return commit, nil
			}
		}
	}
	return "", fmt.Errorf("resolving %q in %s: no branch or tag of that name", ref, url)
}

// parseLsRemote maps each ref name in ls-remote output to its object id.
func parseLsRemote(out []byte) map[string]string {
	refs := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		oid, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		if ok && isCommitID(oid) {
			refs[name] = oid
		}
	}
	return refs
}
