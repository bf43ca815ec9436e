// Package gitmirror gives the controller and the workers git sources at exact
// commits without cloning a repository again for every build.
//
// A Cache keeps one bare mirror per repository URL on local disk. Ensure
// fetches into a mirror only when the commit asked for is missing, so a farm
// that builds the same chunks over and over talks to the git server only
// when something new was pushed. From a mirror, the controller reads the
// definitions at a commit through Repo.FS (no working tree is written), and a
// worker materialises a chunk's source, with its submodules, through
// Repo.Checkout. ResolveRef turns a branch or tag into the commit to build.
//
// Everything runs the system's git binary rather than a Go reimplementation,
// so behaviour (transports, credentials, proxies in the user's git config)
// is exactly what developers get from git on the same machine. What a build
// farm must not depend on is pinned: git never prompts (it runs without a
// terminal, with GIT_TERMINAL_PROMPT=0 and GIT_ASKPASS=true); the system-wide
// /etc/gitconfig is ignored (GIT_CONFIG_NOSYSTEM=1); settings that would
// change what a checkout contains or run code during it (core.autocrlf,
// hooks, fsmonitor) are overridden on every command; and environment
// variables that point git at another repository (GIT_DIR, GIT_INDEX_FILE
// and the like, set when running inside a git hook) are removed.
//
// Stalls are bounded by the caller: every git process is started with the
// context of the call that needs it, and ending that context kills the
// process and everything it started (git runs in its own process group).
// A caller wanting a per-operation limit wraps the call in
// context.WithTimeout; nothing here retries.
//
// Input is untrusted: commit ids must be 40 lower-case hex digits, and URLs,
// refs and paths that git could take for an option are refused before any
// git process starts or anything is written to disk.
package gitmirror
