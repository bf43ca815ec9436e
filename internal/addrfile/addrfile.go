// Package addrfile tells scripts and tests where a daemon listens: a
// daemon started on port 0 writes its chosen addresses to a small JSON file
// once it accepts connections.
package addrfile

import (
	"encoding/json"

	"distbuild/internal/atomicfile"
)

// Write writes the listen addresses as JSON, e.g.
// {"grpc":"127.0.0.1:40123","http":"127.0.0.1:40124"}, atomically (a
// temporary file renamed into place), so a script or test that waits for
// the file to appear never reads half of it. This is how a caller that
// asked for port 0 learns the port.
func Write(path string, addrs Addrs) error {
	data, err := json.Marshal(addrs)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}

// Addrs are a daemon's listen addresses, as written to its address file.
type Addrs struct {
	// GRPC is the main gRPC listener: the cache's, or the controller's for
	// initiators (a worker has none).
	GRPC string `json:"grpc,omitempty"`
	// Worker is the controller's listener for workers.
	Worker string `json:"worker,omitempty"`
	// HTTP is the HTTP listener: the trove's (cache API, git, metrics)
	// or the controller's (metrics, JSON API).
	HTTP string `json:"http,omitempty"`
	// Metrics is a worker's metrics listener.
	Metrics string `json:"metrics,omitempty"`
}
