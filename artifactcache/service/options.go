package service

import (
	"time"

	"distbuild/artifactcache/internal/wire"
	"distbuild/clock"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// ServerOptions are the gRPC server options the cache is tuned for: flow
// control windows and buffers sized for 1 MiB blob chunks.
func ServerOptions() []grpc.ServerOption { return wire.ServerOptions() }

// DefaultUploadIdleTimeout is how long an upload may go without content
// arriving before it is ended: long enough for a worker whose disk or
// network stalls for a moment, short enough that an abandoned or hostile
// stream cannot hold a goroutine, a temporary file and its room for long.
const DefaultUploadIdleTimeout = time.Minute

// Options tunes a Service; the zero value means the defaults.
type Options struct {
	// Verifier checks manifests before they are stored; nil accepts every
	// well-formed manifest whose blobs are present (until the farm signs
	// manifests).
	Verifier ManifestVerifier
	// Logger receives what happens; nil discards it.
	Logger hclog.Logger
	// UploadIdleTimeout ends an upload through which no content arrived
	// for this long, releasing the room it held; zero means
	// DefaultUploadIdleTimeout.
	UploadIdleTimeout time.Duration
	// Clock times idle uploads; nil means the system clock. Tests pass a
	// fake one to expire an upload without waiting.
	Clock clock.Clock
}
