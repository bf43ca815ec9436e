package controller

import (
	"context"

	"distbuild/artifactcache"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

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
