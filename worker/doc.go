// Package worker runs build steps for the controller. A worker dials the
// controller (so it can sit behind NAT), registers its slots, architecture
// and tags, and then runs the jobs it is given: it fetches sources through
// local git mirrors, stages dependency artifacts from the shared cache, runs
// the build commands in a sandbox while streaming their output, and uploads
// the split artifacts, the log and a manifest.
//
// It reports a full snapshot of its jobs on every change and at a third of
// its lease, so after any reconnect the controller knows everything at once.
//
// A failed job is a build failure only when a build command ran and exited
// non-zero; anything else (a fetch, staging, unpacking or upload error, a
// full disk, the step's timeout) is a setup failure, which the controller
// retries on another worker. Nothing may hang a slot: a command that writes
// no output for Config.StallTimeout, and a source fetch or cache transfer
// that makes no progress for Config.TransferStallTimeout, are stopped as
// stalled setup failures. Every job's log is stored, failed ones included,
// capped at Config.LogLimit with a marker where it was cut.
package worker
