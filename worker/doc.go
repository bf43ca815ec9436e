// Package worker is a worker's session with the controller. A worker dials
// the controller (so it can sit behind NAT), registers its slots,
// architecture and tags, and runs the jobs it is given through a Runner
// (the step package's), relaying each job's phase and output. It reports a
// full snapshot of its jobs on every change and at a third of its lease,
// so after any reconnect the controller knows everything at once; jobs
// outlive connections, and the worker reconnects with backoff.
package worker
