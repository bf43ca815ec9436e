// Package sandbox runs a chunk's build commands and a system's integration
// commands, each as "sh -c COMMAND".
//
// With bubblewrap (Mode Bwrap) a command has no network and can write only
// its build directory, its DESTDIR and a private /tmp, so a build cannot
// depend on or damage anything the definitions do not declare. A
// staging-mode chunk runs with its staging area, the artifacts of its
// build-depends, as its root file system; bootstrap- and test-mode chunks,
// which exist to build the first tools, see the host's tools read-only.
// Mode None runs everything on the host, for machines where bubblewrap
// cannot work.
//
// A system's integration commands (Spec.Root) run the same way, with the
// assembled system as their whole, writable, root file system.
//
// Whatever the mode, every command runs in its own process group, which is
// killed as a whole when the command is cancelled, times out or stalls, so a
// build step cannot outlive its job.
package sandbox
