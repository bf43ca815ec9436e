// Package step runs one build step on a worker: it fetches the chunk's
// source through local git mirrors, stages its dependencies' artifacts,
// runs the build commands in the sandbox while relaying their output,
// packs the results into split artifacts, and uploads them, the log and a
// signed manifest to the artifact cache. It knows nothing of the
// controller or its streams: the worker's session hands it a job and a
// Reporter, and gets back a manifest or a classified failure.
//
// A failed step is a build failure only when a build command ran and
// exited non-zero; anything else (a fetch, staging, unpacking or upload
// error, a full disk, the step's timeout) is a setup failure, which the
// controller retries on another worker. Nothing may hang a slot: a command
// that writes no output for Config.StallTimeout, and a source fetch or
// cache transfer that makes no progress for Config.TransferStallTimeout,
// are stopped as stalled setup failures. Every step's log is stored,
// failed ones included, capped at Config.LogLimit with a marker where it
// was cut.
package step
