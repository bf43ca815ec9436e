// Package definitions reads Baserock-style definitions (systems made of strata
// made of chunks) and turns a system into a build graph with a cache key for
// every step.
//
// It is the single place that knows the input format
// (shared/definitions-format.md): the controller uses it to resolve what to
// build, and `initiator graph` uses it offline to show the same graph to a
// user. Everything reads through an fs.FS, so a working tree and a commit read
// out of git are handled by the same code.
//
// Bad input is a normal condition here, not an exceptional one: every
// problem is reported as an *Error naming the file (and line, where YAML gives
// one), and no input makes the package panic.
package definitions
