// Package demo holds the content of distbuild's local demo: the C sources of
// small libraries and programs (sources/), the definitions that build them
// into a system (definitions/), and make-trove.sh, which turns both into the
// git repositories a trove serves. There is no Go code here: the package
// exists for its tests, which prove that the content builds and runs by
// doing, step by step, what the farm will do with it.
package demo
