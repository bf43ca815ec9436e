package controller

import (
	"context"
	"io/fs"

	"distbuild/gitmirror"
)

// GitDefinitions reads definitions repositories through local git mirrors.
type GitDefinitions struct {
	Mirrors *gitmirror.Cache
}

// Tree fetches commit into the repository's mirror if needed and returns
// its files, read straight from git objects.
func (g GitDefinitions) Tree(ctx context.Context, repoURL, commit string) (fs.FS, func() error, error) {
	repo, err := g.Mirrors.Ensure(ctx, repoURL, commit)
	if err != nil {
		return nil, nil, err
	}
	tree, err := repo.FS(ctx, commit)
	if err != nil {
		return nil, nil, err
	}
	return tree, tree.Close, nil
}

// ResolveRef asks the repository which commit a branch or tag names.
func (g GitDefinitions) ResolveRef(ctx context.Context, repoURL, ref string) (string, error) {
	return g.Mirrors.ResolveRef(ctx, repoURL, ref)
}
