package gitmirror

import (
	"errors"
	"io/fs"
	"path"
	"strings"
)

// maxSymlinks bounds a chain of symbolic links, as the kernel does.
const maxSymlinks = 40

var (
	errIsDir  = errors.New("is a directory")
	errNotDir = errors.New("not a directory")
)

// find returns the node at name, following symbolic links in every element
// but the last, and in the last too when follow is set; nil when there is
// none.
func (t *Tree) find(name string, follow bool) *node {
	for range maxSymlinks + 1 {
		n, next := t.walk(name, follow)
		if next == "" {
			return n
		}
		if !fs.ValidPath(next) {
			return nil // the link leads out of the tree
		}
		name = next
	}
	return nil
}

// walk descends name one element at a time and stops at the first symbolic
// link it has to follow. It returns the node reached, or else the path that
// replaces name once that link is followed.
func (t *Tree) walk(name string, follow bool) (*node, string) {
	if name == "." {
		return t.nodes["."], ""
	}
	elems := strings.Split(name, "/")
	for i := range elems {
		prefix := strings.Join(elems[:i+1], "/")
		n := t.nodes[prefix]
		if n == nil {
			return nil, ""
		}
		if n.mode.Type() == fs.ModeSymlink && (follow || i < len(elems)-1) {
			if path.IsAbs(n.target) {
				return nil, ""
			}
			return nil, path.Join(append([]string{path.Dir(prefix), n.target}, elems[i+1:]...)...)
		}
	}
	return t.nodes[name], ""
}

// lookup is find for an fs method named op, returning its errors as
// *fs.PathError.
func (t *Tree) lookup(op, name string, follow bool) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n := t.find(name, follow)
	if n == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

// Open opens name for reading, following symbolic links. A file's content is
// read into memory when it is opened.
func (t *Tree) Open(name string) (fs.File, error) {
	n, err := t.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	info := fileInfo{name: path.Base(name), node: n}
	if n.mode.IsDir() {
		return &openDir{path: name, info: info, entries: n.children}, nil
	}
	data, err := t.blobs.read(n.oid)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return newOpenFile(info, data), nil
}

// ReadFile returns the content of the file name, following symbolic links.
func (t *Tree) ReadFile(name string) ([]byte, error) {
	n, err := t.lookup("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.mode.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	data, err := t.blobs.read(n.oid)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// ReadDir lists the directory name, following symbolic links to it; the
// entries themselves describe links as links.
func (t *Tree) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := t.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return dirEntries(n.children), nil
}

// Stat describes name, following symbolic links.
func (t *Tree) Stat(name string) (fs.FileInfo, error) {
	n, err := t.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), node: n}, nil
}

// Lstat describes name without following a symbolic link there.
func (t *Tree) Lstat(name string) (fs.FileInfo, error) {
	n, err := t.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), node: n}, nil
}

// ReadLink returns the target of the symbolic link name, as stored in git.
func (t *Tree) ReadLink(name string) (string, error) {
	n, err := t.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode.Type() != fs.ModeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.target, nil
}

// Close stops the git process reading file contents. It always returns nil,
// so that deferring it loses nothing.
func (t *Tree) Close() error {
	return t.blobs.close()
}
