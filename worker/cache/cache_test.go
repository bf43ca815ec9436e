package cache

import "distbuild/artifactcache"

// The worker's real cache is the gRPC client.
var _ Cache = (*artifactcache.Client)(nil)
