package gitmirror

import (
	"bytes"
	"io"
	"io/fs"
	"time"
)

// fileInfo describes a tree entry under the name it was reached by; it is
// both the fs.FileInfo and the fs.DirEntry of that entry.
type fileInfo struct {
	name string
	node *node
}

func (i fileInfo) Name() string               { return i.name }
func (i fileInfo) Size() int64                { return i.node.size }
func (i fileInfo) Mode() fs.FileMode          { return i.node.mode }
func (i fileInfo) Type() fs.FileMode          { return i.node.mode.Type() }
func (i fileInfo) ModTime() time.Time         { return time.Time{} }
func (i fileInfo) IsDir() bool                { return i.node.mode.IsDir() }
func (i fileInfo) Sys() any                   { return nil }
func (i fileInfo) Info() (fs.FileInfo, error) { return i, nil }

func dirEntries(nodes []*node) []fs.DirEntry {
	entries := make([]fs.DirEntry, len(nodes))
	for i, n := range nodes {
		entries[i] = fileInfo{name: n.name, node: n}
	}
	return entries
}

// openFile is an opened regular file, its content already in memory.
type openFile struct {
	info fileInfo
	*bytes.Reader
}

func newOpenFile(info fileInfo, data []byte) *openFile {
	return &openFile{info: info, Reader: bytes.NewReader(data)}
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *openFile) Close() error               { return nil }

// openDir is an opened directory, read in order by ReadDir.
type openDir struct {
	path    string
	info    fileInfo
	entries []*node
	offset  int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *openDir) Close() error               { return nil }

func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errIsDir}
}

// ReadDir follows fs.ReadDirFile: n > 0 returns at most n entries and io.EOF
// at the end, n <= 0 returns all that remain.
func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	d.offset += len(rest)
	return dirEntries(rest), nil
}
