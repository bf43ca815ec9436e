package gitmirror

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Tree is a commit's tree read straight from a mirror, for readers such as
// the definitions loader that only need file contents: no work tree is
// written, the listing is read once, and file contents are read on demand
// through one git process. It is safe for concurrent use.
//
// Beyond fs.FS it implements fs.ReadFileFS, fs.ReadDirFS, fs.StatFS and
// fs.ReadLinkFS. Files keep git's permissions (0644 or 0755); directories are
// 0755 and times are zero, since git records neither.
//
// Symbolic links behave as in testing/fstest.MapFS: directory entries, Lstat
// and ReadLink describe a link itself, while Open, Stat, ReadFile and ReadDir
// follow it. A link only leads somewhere inside the tree; one with an
// absolute target, one climbing above the root, a dangling one and a loop all
// read as not existing.
//
// A submodule (a gitlink entry) appears as an empty directory, as in a
// checkout whose submodules were not initialised.
type Tree struct {
	nodes map[string]*node // by slash-separated path; "." is the root
	blobs *blobReader
}

// The interfaces the definitions loader and io/fs helpers look for.
var _ interface {
	fs.ReadFileFS
	fs.ReadDirFS
	fs.StatFS
	fs.ReadLinkFS
	io.Closer
} = (*Tree)(nil)

// node is one entry of the tree.
type node struct {
	name     string // base name, "." for the root
	mode     fs.FileMode
	size     int64
	oid      string  // the blob holding a file's content or a link's target
	target   string  // a symbolic link's target
	children []*node // a directory's entries, sorted by name
}

// FS returns the tree of commit, which must be in the mirror (see Ensure).
// The returned Tree keeps a git process running until it is closed or ctx
// ends; file contents cannot be read after that, though listing still works.
func (r *Repo) FS(ctx context.Context, commit string) (*Tree, error) {
	if err := checkCommit(commit); err != nil {
		return nil, err
	}
	if !r.hasCommit(ctx, commit) {
		return nil, fmt.Errorf("reading commit %s of %s: not in the mirror", commit, r.url)
	}
	out, err := runGit(ctx, r.dir, "ls-tree", "-r", "-t", "-l", "-z", commit)
	if err != nil {
		return nil, fmt.Errorf("listing commit %s of %s: %w", commit, r.url, err)
	}
	t, links, err := parseTree(out)
	if err != nil {
		return nil, fmt.Errorf("listing commit %s of %s: %w", commit, r.url, err)
	}
	if t.blobs, err = startBlobReader(ctx, r.dir); err != nil {
		return nil, fmt.Errorf("reading commit %s of %s: %w", commit, r.url, err)
	}
	for _, link := range links {
		target, err := t.blobs.read(link.oid)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("reading commit %s of %s: %w", commit, r.url, err)
		}
		link.target = string(target)
	}
	return t, nil
}

// parseTree builds the tree from `git ls-tree -r -t -l -z` output, whose
// records are "<mode> <type> <oid> <size>\t<path>", and returns its symbolic
// links, whose targets are still to be read.
func parseTree(out []byte) (*Tree, []*node, error) {
	root := &node{name: ".", mode: fs.ModeDir | 0o755}
	t := &Tree{nodes: map[string]*node{".": root}}
	var links []*node
	for record := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if record == "" {
			continue
		}
		meta, name, ok := strings.Cut(record, "\t")
		fields := strings.Fields(meta)
		if !ok || len(fields) != 4 || !fs.ValidPath(name) {
			return nil, nil, fmt.Errorf("unexpected ls-tree output %q", record)
		}
		mode, err := treeMode(fields[0])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		n := t.entry(name)
		n.mode, n.oid = mode, fields[2]
		if mode.IsRegular() || mode.Type() == fs.ModeSymlink {
			if n.size, err = strconv.ParseInt(fields[3], 10, 64); err != nil {
				return nil, nil, fmt.Errorf("unexpected ls-tree output %q", record)
			}
		}
		if mode.Type() == fs.ModeSymlink {
			links = append(links, n)
		}
	}
	for _, n := range t.nodes {
		slices.SortFunc(n.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	}
	return t, links, nil
}

// entry returns the node at name, adding it and any missing parent
// directories. (ls-tree -t lists a directory before its contents, but nothing
// here depends on that order.)
func (t *Tree) entry(name string) *node {
	if n, ok := t.nodes[name]; ok {
		return n
	}
	parent := t.nodes["."]
	if dir := path.Dir(name); dir != "." {
		parent = t.entry(dir)
	}
	n := &node{name: path.Base(name), mode: fs.ModeDir | 0o755}
	parent.children = append(parent.children, n)
	t.nodes[name] = n
	return n
}

// treeMode maps git's entry modes to file modes. A gitlink (160000) becomes
// an empty directory.
func treeMode(gitMode string) (fs.FileMode, error) {
	switch gitMode {
	case "040000", "160000":
		return fs.ModeDir | 0o755, nil
	case "100644", "100664":
		return 0o644, nil
	case "100755":
		return 0o755, nil
	case "120000":
		return fs.ModeSymlink | 0o777, nil
	}
	return 0, fmt.Errorf("unsupported git mode %s", gitMode)
}
