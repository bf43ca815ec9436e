package controller

import (
	"context"
	"io/fs"

	"distbuild/artifactcache"
	"distbuild/digest"
	"distbuild/gitmirror"
	pb "distbuild/proto/distbuild/v1"
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

// CacheIndex asks the trove's artifact cache what it holds.
type CacheIndex struct {
	Client *artifactcache.Client
}

// MissingCacheKeys asks in as few round trips as the message size allows.
func (c CacheIndex) MissingCacheKeys(ctx context.Context, keys []string) ([]string, error) {
	parsed := make([]digest.CacheKey, len(keys))
	for i, k := range keys {
		var err error
		if parsed[i], err = digest.ParseCacheKey(k); err != nil {
			return nil, err
		}
	}
	_, missing, err := c.Client.FindMissing(ctx, nil, parsed)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(missing))
	for i, k := range missing {
		out[i] = k.String()
	}
	return out, nil
}

// Manifest reads one manifest.
func (c CacheIndex) Manifest(ctx context.Context, key string) (*pb.Manifest, error) {
	k, err := digest.ParseCacheKey(key)
	if err != nil {
		return nil, err
	}
	return c.Client.GetManifest(ctx, k)
}
