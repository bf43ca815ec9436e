// Package e2e holds the end-to-end tests: they build the real binaries and
// run a whole farm (trove, controller, two workers) as separate processes on
// loopback ports, driving it with the real initiator and the real git, on
// the demo's definitions.
package e2e
