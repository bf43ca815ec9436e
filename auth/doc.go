// Package auth decides who may talk to the farm's daemons. Workers and
// users hold bearer tokens; the daemons keep only each token's SHA-256, in
// a registry file written by `controller worker add` and `controller user
// add`. Entries have room for a worker's public key, for checking the
// manifests it signs.
//
// The registry is a file rather than rows in the controller's database so
// that it can be edited while the daemons run (they reload it when it
// changes) and copied to other hosts, such as the trove's.
package auth
