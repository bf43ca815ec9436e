package service

import (
	"distbuild/artifactcache/internal/wire"

	"google.golang.org/grpc"
)

// ServerOptions are the gRPC server options the cache is tuned for: flow
// control windows and buffers sized for 1 MiB blob chunks.
func ServerOptions() []grpc.ServerOption { return wire.ServerOptions() }
