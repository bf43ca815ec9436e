package step

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"distbuild/digest"
	"distbuild/tarball"
)

// treeCache is a Cache that also keeps blobs unpacked, once each, as
// cache.Local does; the runner stages by linking when its cache is one.
type treeCache interface {
	// Tree returns the directory holding blob d unpacked by fill (called
	// only when no such tree is kept yet) under rules named variant, kept
	// until release is called.
	Tree(ctx context.Context, d digest.Digest, variant string, fill func(dir string) error) (dir string, release func(), err error)
}

// linker stages an artifact by reference: its blob is unpacked once, by
// the same checks as unpacker's, into a tree the worker keeps (treeCache),
// and each staging hard-links that tree's files into place. No file's
// content is copied, so staging a closure costs a link per file and a
// directory per directory, however big the files are.
//
// The staged files are the kept tree's own inodes, so whatever stages by
// linking must make sure no build can write through them: the runner uses
// it only where the staging area is mounted read-only for the build, or is
// the lower layer of an overlay (see protect.go).
type linker struct {
	r     *Runner
	trees treeCache
}

func (l linker) stage(ctx context.Context, t *task, dest string, a artifact) error {
	tree, release, err := l.trees.Tree(ctx, a.blob, variant(a.opts), func(dir string) error {
		return unpacker{l.r}.stage(ctx, t, dir, a)
	})
	if err != nil {
		return err
	}
	t.onEnd(release)
	if err := linkTree(tree, dest); err != nil {
		return fmt.Errorf("staging %s: %w", a.name, err)
	}
	return nil
}

// variant names the unpacking rules a tree was unpacked by: a tree that
// passed looser rules may hold what stricter ones refuse.
func variant(o tarball.UnpackOptions) string {
	v := "plain"
	if o.AllowDevices {
		v += "-devices"
	}
	if o.AllowSetuid {
		v += "-setuid"
	}
	return v
}

// linkers is how many links linkTree makes at once: the kernel does them
// in parallel across directories, and two or more halve the time on a
// two-core machine.
const linkers = 4

// linkTree adds the tree at src, which tarball.Unpack made, to dest with
// Unpack's own rules for what dest already holds, so that staging a
// sequence of artifacts by linking gives what unpacking them in that order
// gives: directories are merged (src's mode and mtime win), anything else
// already at a path is replaced, and a directory meeting a non-directory
// (a symlink included) either way is refused. Files, symlinks and nodes
// become hard links to src's; directories are made anew.
func linkTree(src, dest string) error {
	var dirs []dirAttrs
	var files []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		if !d.IsDir() {
			files = append(files, rel)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Parents come before their children, so a directory meeting a
		// symlink is refused before anything is linked through it.
		if err := mkdirOver(filepath.Join(dest, rel)); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		dirs = append(dirs, dirAttrs{rel, info})
		return nil
	})
	if err != nil {
		return err
	}
	if err := linkAll(src, dest, files); err != nil {
		return err
	}
	// Deepest last-made first, as Unpack does, so a read-only directory is
	// closed only once it is filled.
	for i := len(dirs) - 1; i >= 0; i-- {
		p := filepath.Join(dest, dirs[i].rel)
		if err := os.Chmod(p, dirs[i].info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		if err := os.Chtimes(p, dirs[i].info.ModTime(), dirs[i].info.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// dirAttrs is a directory linkTree made or merged, with the tree's own
// directory's attributes to give it.
type dirAttrs struct {
	rel  string
	info fs.FileInfo
}

// mkdirOver makes directory p unless one is there already.
func mkdirOver(p string) error {
	err := os.Mkdir(p, 0o700)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	info, lerr := os.Lstat(p)
	if lerr != nil {
		return lerr
	}
	if !info.IsDir() {
		return errors.New("already exists and is not a directory")
	}
	return nil
}

// linkAll links each of files (relative to src) to the same path in dest,
// linkers at a time.
func linkAll(src, dest string, files []string) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan string)
		stop  = make(chan struct{})
	)
	for range min(linkers, len(files)) {
		wg.Go(func() {
			for rel := range next {
				if err := linkOver(filepath.Join(src, rel), filepath.Join(dest, rel)); err != nil {
					once.Do(func() { first = fmt.Errorf("%s: %w", rel, err); close(stop) })
				}
			}
		})
	}
feed:
	for _, rel := range files {
		select {
		case next <- rel:
		case <-stop:
			break feed
		}
	}
	close(next)
	wg.Wait()
	return first
}

// linkOver makes to a hard link to from, replacing whatever non-directory
// to names.
func linkOver(from, to string) error {
	err := os.Link(from, to)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	info, err := os.Lstat(to)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return errors.New("a directory already exists there")
	}
	if err := os.Remove(to); err != nil {
		return err
	}
	return os.Link(from, to)
}
