package definitions

import (
	"fmt"
	"sort"
	"strings"
)

// RepoAliases maps the short repository names definitions use
// ("upstream:zlib") to URLs. Definitions stay portable between farms because
// only this mapping, not the morphs, says where repositories live.
type RepoAliases struct {
	pull map[string]string // prefix -> URL pattern with one %s
}

// DefaultAliasPrefixes are the prefixes real definitions use. With
// NewRepoAliases they all point at the configured trove.
var DefaultAliasPrefixes = []string{"baserock", "upstream", "github", "gnome", "freedesktop"}

// NewRepoAliases maps every default prefix onto troveGitURL (for example
// "http://trove:8080/git"): "upstream:zlib" becomes
// "<troveGitURL>/upstream/zlib". With an empty troveGitURL there are no
// aliases until Set adds some.
func NewRepoAliases(troveGitURL string) *RepoAliases {
	a := &RepoAliases{pull: map[string]string{}}
	if troveGitURL != "" {
		base := strings.TrimSuffix(troveGitURL, "/")
		for _, p := range DefaultAliasPrefixes {
			a.pull[p] = base + "/" + p + "/%s"
		}
	}
	return a
}

// Set adds or overrides an alias from a definition in the format Baserock
// tools use: "prefix=pullpattern#pushpattern", where the push pattern is
// optional and ignored (distbuild never pushes) and %s stands for the rest of
// the repository name.
func (a *RepoAliases) Set(def string) error {
	prefix, patterns, ok := strings.Cut(def, "=")
	if !ok || prefix == "" || strings.ContainsAny(prefix, ":/ ") {
		return fmt.Errorf("repo alias %q: want prefix=URL-pattern (e.g. upstream=https://git.example/delta/%%s)", def)
	}
	pull, _, _ := strings.Cut(patterns, "#")
	if strings.Count(pull, "%s") != 1 || strings.Count(pull, "%") != 1 {
		return fmt.Errorf("repo alias %q: the URL pattern must contain %%s exactly once and no other %%", def)
	}
	a.pull[prefix] = pull
	return nil
}

// Resolve turns a repo as written in a stratum into a URL. Full URLs and
// absolute paths pass through; "prefix:name" needs a known prefix.
func (a *RepoAliases) Resolve(repo string) (string, error) {
	if strings.Contains(repo, "://") || strings.HasPrefix(repo, "/") || strings.HasPrefix(repo, "file:") {
		return repo, nil
	}
	prefix, rest, ok := strings.Cut(repo, ":")
	if !ok || rest == "" {
		return "", fmt.Errorf("repo %q is neither a URL nor prefix:name", repo)
	}
	if strings.Contains(rest, "..") {
		return "", fmt.Errorf("repo %q: name must not contain ..", repo)
	}
	pattern, ok := a.pull[prefix]
	if !ok {
		known := make([]string, 0, len(a.pull))
		for p := range a.pull {
			known = append(known, p)
		}
		sort.Strings(known)
		return "", fmt.Errorf("repo %q: unknown repo alias prefix %q (known: %s)", repo, prefix, strings.Join(known, ", "))
	}
	return fmt.Sprintf(pattern, rest), nil
}

// ResolveRepos resolves the repository of every chunk in g, as must happen
// before any source is fetched; the error names the stratum file, line and
// chunk of the first repo that cannot be resolved.
func (g *Graph) ResolveRepos(a *RepoAliases) (map[*Step]string, error) {
	urls := make(map[*Step]string)
	for _, s := range g.Steps {
		if s.Kind != KindChunk {
			continue
		}
		u, err := a.Resolve(s.Chunk.Repo)
		if err != nil {
			return nil, errorf(s.File, s.Line, "stratum %q: chunk %q: %v", s.Chunk.Stratum, s.Name, err)
		}
		urls[s] = u
	}
	return urls, nil
}
