// Package e2e holds the end-to-end tests: they build the real binaries and
// run a whole farm (trove, controller, two workers) as separate processes on
// loopback ports, driving it with the real initiator and the real git, on
// the demo's definitions. TestAFarmAcrossNetworkHosts runs them instead as
// hosts of a small network of Linux network namespaces (netns_helpers_test.go).
package e2e
