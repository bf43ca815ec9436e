// Package worker runs build steps for the controller. A worker dials the
// controller (so it can sit behind NAT), registers its slots, architecture
// and tags, and then runs the jobs it is given: it fetches sources through
// local git mirrors, stages dependency artifacts from the shared cache, runs
// the build commands in a sandbox while streaming their output, and uploads
// the split artifacts, the log and a manifest.
//
// It reports a full snapshot of its jobs on every change and at a third of
// its lease, so after any reconnect the controller knows everything at once.
package worker
