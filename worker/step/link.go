package step

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

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

// unpackers is how many trees a staging unpacks at once when it needs
// several the worker does not keep yet. Trees are independent of each
// other, unlike artifacts unpacked in order into one staging area, so
// they can be unpacked side by side, and ahead of the linking of earlier
// ones. On two cores, two halve a cold staging and four take a little
// less again (BENCHMARKS.md).
const unpackers = 4

// kept is a tree Tree gave, or why it could not.
type kept struct {
	dir     string
	release func()
	err     error
}

func (l linker) stage(ctx context.Context, t *task, dest string, arts []artifact) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	trees := make([]chan kept, len(arts))
	for i := range trees {
		trees[i] = make(chan kept, 1)
	}
	go func() {
		slots := make(chan struct{}, unpackers)
		for i, a := range arts {
			slots <- struct{}{}
			go func() {
				defer func() { <-slots }()
				if err := ctx.Err(); err != nil {
					trees[i] <- kept{err: err}
					return
				}
				// Each tree unpacks from a copy of the blob of its own.
				scratch := filepath.Join(t.dir, "blob-"+a.blob.Hash().String()+"-"+variant(a.opts))
				dir, release, err := l.trees.Tree(ctx, a.blob, variant(a.opts), func(dir string) error {
					return unpacker{l.r}.unpack(ctx, scratch, dir, a)
				})
				trees[i] <- kept{dir, release, err}
			}()
		}
	}()
	// Every tree is received, even after a failure, so that each one
	// Tree gave is released as the job ends.
	var first error
	for i, a := range arts {
		k := <-trees[i]
		if k.release != nil {
			t.onEnd(k.release)
		}
		switch {
		case first != nil:
		case k.err != nil:
			first = missingInput(a.key, k.err)
		default:
			if err := linkTree(k.dir, dest); err != nil {
				first = fmt.Errorf("staging %s: %w", a.name, err)
			}
		}
		if first != nil {
			cancel()
		}
	}
	return first
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

// linkers is how many directories linkTree fills at once: the kernel
// links in parallel across directories, and two or more halve the time on
// a two-core machine.
const linkers = 4

// linkTree adds the tree at src, which tarball.Unpack made, to dest with
// Unpack's own rules for what dest already holds, so that staging a
// sequence of artifacts by linking gives what unpacking them in that order
// gives: directories are merged (src's mode and mtime win), anything else
// already at a path is replaced, and a directory meeting a non-directory
// (a symlink included) either way is refused. Files, symlinks and nodes
// become hard links to src's; directories are made anew.
//
// Each directory is filled by one call of fill, linkers at a time, every
// link made relative to the open source and destination directories, so
// no path is walked from the root for each file.
func linkTree(src, dest string) error {
	tl := &treeLinker{src: src, dest: dest, slots: make(chan struct{}, linkers)}
	tl.fillLater(".")
	tl.wg.Wait()
	if tl.err != nil {
		return tl.err
	}
	return tl.finishDirs()
}

// treeLinker is one linkTree in progress.
type treeLinker struct {
	src, dest string
	slots     chan struct{}
	wg        sync.WaitGroup

	mu sync.Mutex
	// err is the first failure; once set, nothing more is filled.
	err  error
	dirs []dirAttrs
}

// dirAttrs is a directory linkTree made or merged, with the mode and
// mtime of the tree's own directory to give it.
type dirAttrs struct {
	rel   string
	mode  uint32
	mtime unix.Timespec
}

// fillLater fills directory rel (made already in dest) in a goroutine of
// its own once a slot is free.
func (tl *treeLinker) fillLater(rel string) {
	tl.wg.Go(func() {
		tl.slots <- struct{}{}
		defer func() { <-tl.slots }()
		if tl.failed() {
			return
		}
		if err := tl.fill(rel); err != nil {
			tl.mu.Lock()
			if tl.err == nil {
				tl.err = err
			}
			tl.mu.Unlock()
		}
	})
}

func (tl *treeLinker) failed() bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.err != nil
}

// fill makes rel's subdirectories in dest, each then filled in turn, and
// links its other entries.
func (tl *treeLinker) fill(rel string) error {
	src, err := openDir(filepath.Join(tl.src, rel))
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openDir(filepath.Join(tl.dest, rel))
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer dst.Close()
	if rel != "." {
		var st unix.Stat_t
		if err := unix.Fstat(int(src.Fd()), &st); err != nil {
			return err
		}
		tl.mu.Lock()
		tl.dirs = append(tl.dirs, dirAttrs{rel, st.Mode & 0o7777, st.Mtim})
		tl.mu.Unlock()
	}
	entries, err := src.ReadDir(-1)
	if err != nil {
		return err
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, e := range entries {
		name := e.Name()
		sub := filepath.Join(rel, name)
		if e.IsDir() {
			// Before anything is linked below it, so a directory meeting
			// a symlink is refused first.
			if err := mkdirOver(dfd, name); err != nil {
				return fmt.Errorf("%s: %w", sub, err)
			}
			tl.fillLater(sub)
			continue
		}
		if err := linkOver(sfd, dfd, name); err != nil {
			return fmt.Errorf("%s: %w", sub, err)
		}
	}
	return nil
}

// openDir opens the directory at path, refusing a symlink there.
func openDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// finishDirs gives the directories linkTree made or merged the tree's
// modes and mtimes once every link is made (a link changes its
// directory's mtime), deepest first, as Unpack does, so a read-only
// directory is closed only once it is filled.
func (tl *treeLinker) finishDirs() error {
	slices.SortFunc(tl.dirs, func(a, b dirAttrs) int {
		return cmp.Compare(strings.Count(b.rel, "/"), strings.Count(a.rel, "/"))
	})
	d, err := openDir(tl.dest)
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	for _, a := range tl.dirs {
		if err := unix.Fchmodat(fd, a.rel, a.mode, 0); err != nil {
			return &fs.PathError{Op: "chmod", Path: a.rel, Err: err}
		}
		ts := []unix.Timespec{a.mtime, a.mtime}
		if err := unix.UtimesNanoAt(fd, a.rel, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "chtimes", Path: a.rel, Err: err}
		}
	}
	return nil
}

// mkdirOver makes directory name in dir unless one is there already.
func mkdirOver(dir int, name string) error {
	err := unix.Mkdirat(dir, name, 0o700)
	if err != unix.EEXIST {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return errors.New("already exists and is not a directory")
	}
	return nil
}

// linkOver makes name in to a hard link to name in from, replacing
// whatever non-directory is there.
func linkOver(from, to int, name string) error {
	err := unix.Linkat(from, name, to, name, 0)
	if err != unix.EEXIST {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(to, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return errors.New("a directory already exists there")
	}
	if err := unix.Unlinkat(to, name, 0); err != nil {
		return err
	}
	return unix.Linkat(from, name, to, name, 0)
}
