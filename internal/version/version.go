// Package version tells which build of distbuild a binary is, for
// `--version` on every binary and for the first line a daemon logs: an
// operator upgrading a farm host by host, or reporting a bug, needs to know
// exactly which commit each machine runs and whether it was built from a
// tree with uncommitted changes.
//
// Everything comes from what the Go toolchain records in the binary
// (runtime/debug.ReadBuildInfo): the module version and the VCS revision,
// its commit time and whether the tree was modified. Nothing is stamped in
// with -ldflags, so a plain `go build` in a checkout gives a complete
// answer, and two builds of one commit stay identical (Go records no build
// time, which is why the commit's time is shown instead).
package version

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"
)

// String describes this binary's build, e.g.
//
//	v0.0.0-20260801100000-0123456789ab (revision 0123456789ab, committed 2026-08-01T10:00:00Z)
//	(devel) (revision 0123456789ab, modified, committed 2026-08-01T10:00:00Z)
//	(devel) (revision unknown)
//
// "revision unknown" means the binary was built without VCS information
// (outside a git checkout, or with -buildvcs=false).
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (the binary holds no build information)"
	}
	return describe(info)
}

// describe formats what a binary's build information says about it.
func describe(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var revision, modified, committed string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		case "vcs.time":
			committed = s.Value
		}
	}
	if revision == "" {
		return v + " (revision unknown)"
	}
	if len(revision) > 12 {
		revision = revision[:12] // as git abbreviates it, enough to find the commit
	}
	parts := []string{"revision " + revision}
	if modified == "true" {
		parts = append(parts, "modified")
	}
	if committed != "" {
		parts = append(parts, "committed "+committed)
	}
	return fmt.Sprintf("%s (%s)", v, strings.Join(parts, ", "))
}

// Register adds --version to fs. After parsing, a true result means print
// the version with Print and exit 0, before checking the other flags (so
// `controller --version` works without --state-dir).
func Register(fs *pflag.FlagSet) *bool {
	return fs.Bool("version", false, "print the version and VCS revision of this binary and exit")
}

// Print writes what --version prints: "NAME VERSION (revision R[,
// modified][, committed T])", one line.
func Print(w io.Writer, name string) {
	fmt.Fprintf(w, "%s %s\n", name, String())
}
