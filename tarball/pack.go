package tarball

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
)

// Artifact is one packed split artifact, ready to be moved into the cache
// under its digest.
type Artifact struct {
	// Name is the split artifact name the classifier gave its files.
	Name string
	// Path is the tarball: a temporary file in Pack's output directory,
	// which the caller moves into the cache or removes.
	Path string
	// SHA256 is the hex digest of the tarball's bytes, computed while
	// writing so the cache need not read the file again to key it.
	SHA256 string
	// Size is the tarball's length in bytes.
	Size int64
}

// entry is one file system object under DESTDIR.
type entry struct {
	name string      // slash-separated and relative to DESTDIR, e.g. "usr/lib/libz.so.1"
	info fs.FileInfo // from Lstat: symlinks are entries, never followed
}

// maxListed caps how many unmatched paths an error names, so bad rules on a
// large chunk give a readable message.
const maxListed = 10

// Pack splits what a chunk installed into destdir into one tarball per split
// artifact, written into outDir (created if missing). classify maps a path
// relative to destdir (e.g. "usr/lib/libz.so.1") to its artifact name; the
// worker passes its chunk's split rules, tests pass a closure.
//
// Every non-directory is classified, and so is every empty directory, so a
// chunk that installs only a directory skeleton (/tmp, /proc) keeps it.
// Directories above a classified path go into the same tarball, with their
// own permissions. An artifact that receives nothing is not produced: the
// result holds only artifacts with at least one entry, sorted by name.
//
// Any path the classifier does not match is an error naming it, since split
// rules end with a catch-all and a gap means the rules are wrong; then, as
// on any error, no tarball is left in outDir.
func Pack(destdir, outDir string, classify func(path string) (artifact string, ok bool)) ([]Artifact, error) {
	root, err := os.OpenRoot(destdir)
	if err != nil {
		return nil, fmt.Errorf("packing %s: %w", destdir, err)
	}
	defer root.Close()
	entries, err := scan(root)
	if err != nil {
		return nil, fmt.Errorf("packing %s: %w", destdir, err)
	}
	groups, err := split(entries, classify)
	if err != nil {
		return nil, fmt.Errorf("packing %s: %w", destdir, err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("packing %s: %w", destdir, err)
	}
	var out []Artifact
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		a, err := writeTar(root, outDir, name, groups[name])
		if err != nil {
			for _, done := range out {
				os.Remove(done.Path)
			}
			return nil, fmt.Errorf("packing %s: artifact %s: %w", destdir, name, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// scan lists everything under root except root itself, sorted by name in
// byte order. That order does not depend on how the tree was written, and
// it puts every directory before its contents, as unpacking needs.
func scan(root *os.Root) ([]entry, error) {
	var entries []entry
	err := fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		entries = append(entries, entry{name, info})
		return nil
	})
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return entries, err
}

// split groups entries by artifact, keeping the sorted order. Each artifact
// gets its classified entries and every directory above them.
func split(entries []entry, classify func(string) (string, bool)) (map[string][]entry, error) {
	nonEmpty := map[string]bool{}
	for _, e := range entries {
		nonEmpty[path.Dir(e.name)] = true
	}
	members := map[string]map[string]bool{}
	var unmatched []string
	for _, e := range entries {
		if e.info.IsDir() && nonEmpty[e.name] {
			continue
		}
		artifact, ok := classify(e.name)
		if !ok {
			unmatched = append(unmatched, e.name)
			continue
		}
		if artifact == "" {
			return nil, fmt.Errorf("the classifier gave %s an empty artifact name", e.name)
		}
		set := members[artifact]
		if set == nil {
			set = map[string]bool{}
			members[artifact] = set
		}
		// Stopping at a name already present is safe: its parents are too.
		for n := e.name; n != "." && !set[n]; n = path.Dir(n) {
			set[n] = true
		}
	}
	if len(unmatched) > 0 {
		return nil, unmatchedError(unmatched)
	}
	groups := map[string][]entry{}
	for _, e := range entries {
		for artifact, set := range members {
			if set[e.name] {
				groups[artifact] = append(groups[artifact], e)
			}
		}
	}
	return groups, nil
}

func unmatchedError(paths []string) error {
	listed := paths[:min(len(paths), maxListed)]
	more := ""
	if len(paths) > len(listed) {
		more = fmt.Sprintf(" and %d more", len(paths)-len(listed))
	}
	return fmt.Errorf("no split rule matches %s%s: the chunk's split rules need a catch-all", strings.Join(listed, ", "), more)
}
