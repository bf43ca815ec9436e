package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"distbuild/digest"
)

// Besides blobs, Local keeps the trees they were unpacked into, so that a
// step staging an artifact the worker has staged before links its files
// into place instead of unpacking the tarball again. A tree lives in
// DIR/trees/NAME, where NAME is the blob's hash and a variant (what the
// unpacking allowed: the same blob unpacked under other rules is another
// tree): NAME/root is the tree and NAME/info records the boot it was
// written in and its size on disk. Trees count against the same limit as
// blobs and are evicted with them, least recently used first, except
// those a running step holds.
//
// A tree is unpacked into a temporary directory (named with a leading dot,
// removed when the cache is next opened) and renamed into place whole, so
// a crash never leaves a partial tree that is later used. Its files are
// not synced: a tree written before the machine last booted may have lost
// data the kernel never wrote out, so the cache discards those when it is
// opened (the blobs stay, so unpacking them again costs no download).

// treesDir is the subdirectory of a Local's directory holding the trees.
const treesDir = "trees"

// localTree is one unpacked tree.
type localTree struct {
	size    int64
	lastUse time.Time
	// pins counts the holders that have not released it; a pinned tree
	// is never evicted.
	pins int
	// unpacking is closed when the first holder's unpacking ends, well
	// or not; nil once the tree is ready.
	unpacking chan struct{}
}

// Tree returns the directory holding blob d unpacked, calling fill to
// unpack it into an empty directory when the cache has no such tree yet.
// variant names the rules fill unpacks by (letters, digits and '-'), so
// that trees unpacked under different rules are kept apart. The tree must
// be treated as read-only and stays in place until release is called.
// Concurrent calls for the same tree wait for one unpacking. fill's error
// is returned as it is, so callers can tell a missing blob from a refused
// entry.
func (c *Local) Tree(ctx context.Context, d digest.Digest, variant string, fill func(dir string) error) (dir string, release func(), err error) {
	if variant == "" || strings.Trim(variant, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return "", nil, fmt.Errorf("tree variant %q: want letters, digits and '-'", variant)
	}
	name := d.Hash().String() + "-" + variant
	for {
		c.mu.Lock()
		e, ok := c.trees[name]
		if ok && e.unpacking != nil {
			wait := e.unpacking
			c.mu.Unlock()
			select {
			case <-wait:
				continue // unpacked, or failed and this call tries itself
			case <-ctx.Done():
				return "", nil, context.Cause(ctx)
			}
		}
		if ok {
			now := time.Now()
			e.pins++
			e.lastUse = now
			c.treeHits++
			c.mu.Unlock()
			// Best effort: only the order after a restart depends on it.
			os.Chtimes(c.treePath(name), time.Time{}, now)
			return c.treeRoot(name), c.releaser(name), nil
		}
		e = &localTree{pins: 1, unpacking: make(chan struct{})}
		c.trees[name] = e
		c.mu.Unlock()

		size, err := c.unpackTree(name, fill)
		c.mu.Lock()
		close(e.unpacking)
		e.unpacking = nil
		if err != nil {
			delete(c.trees, name)
			c.mu.Unlock()
			return "", nil, err
		}
		e.size, e.lastUse = size, time.Now()
		c.used += size
		c.treeMisses++
		trash := c.evictLocked()
		c.mu.Unlock()
		c.removeAll(trash)
		return c.treeRoot(name), c.releaser(name), nil
	}
}

func (c *Local) treePath(name string) string { return filepath.Join(c.dir, treesDir, name) }

func (c *Local) treeRoot(name string) string { return filepath.Join(c.treePath(name), "root") }

// releaser returns the function that unpins a tree, once however often it
// is called.
func (c *Local) releaser(name string) func() {
	done := false
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if done {
			return
		}
		done = true
		if e, ok := c.trees[name]; ok {
			e.pins--
		}
	}
}

// unpackTree has fill unpack a tree in a temporary directory, records it,
// and renames it into place, returning its size on disk.
func (c *Local) unpackTree(name string, fill func(dir string) error) (int64, error) {
	trees := filepath.Join(c.dir, treesDir)
	if err := os.MkdirAll(trees, 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(trees, ".unpacking-")
	if err != nil {
		return 0, err
	}
	fail := func(err error) (int64, error) {
		c.removeAll([]string{tmp})
		return 0, err
	}
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return fail(err)
	}
	if err := fill(root); err != nil {
		return fail(err)
	}
	size, err := diskUsage(root)
	if err != nil {
		return fail(err)
	}
	info := fmt.Sprintf("%s %d\n", bootID(), size)
	if err := os.WriteFile(filepath.Join(tmp, "info"), []byte(info), 0o644); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, c.treePath(name)); err != nil {
		// A tree of that name left by a process that forgot it (it cannot
		// be one this cache knows: that would have been used).
		old, rerr := c.trash(c.treePath(name))
		if rerr != nil {
			return fail(err)
		}
		c.removeAll([]string{old})
		if err := os.Rename(tmp, c.treePath(name)); err != nil {
			return fail(err)
		}
	}
	return size, nil
}

// diskUsage is what the tree at root takes on disk: its blocks, so that
// a tree of many small files counts for what it costs.
func diskUsage(root string) (int64, error) {
	var size int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			size += st.Blocks * 512
		} else {
			size += info.Size()
		}
		return nil
	})
	return size, err
}

// bootID identifies this boot of the machine; a tree recorded under
// another was written before a reboot that may have lost some of it.
func bootID() string {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown-boot"
	}
	return strings.TrimSpace(string(id))
}

// loadTrees reads which trees DIR/trees holds, discarding temporary
// directories, trees from an earlier boot and anything it does not
// recognise as a tree.
func (c *Local) loadTrees() error {
	trees := filepath.Join(c.dir, treesDir)
	entries, err := os.ReadDir(trees)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	boot := bootID()
	var stale []string
	for _, e := range entries {
		path := filepath.Join(trees, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			stale = append(stale, path)
			continue
		}
		data, err := os.ReadFile(filepath.Join(path, "info"))
		fields := strings.Fields(string(data))
		var size int64
		if err == nil && len(fields) == 2 {
			size, err = strconv.ParseInt(fields[1], 10, 64)
		}
		info, ierr := e.Info()
		if err != nil || ierr != nil || len(fields) != 2 || fields[0] != boot {
			c.log.Info("discarding a tree the cache cannot trust (partial, unreadable, or from before a reboot)", "path", path)
			stale = append(stale, path)
			continue
		}
		c.trees[e.Name()] = &localTree{size: size, lastUse: info.ModTime()}
		c.used += size
	}
	c.removeAll(stale)
	return nil
}

// trash renames a tree out of the way, under a name loadTrees discards,
// so that removing it, which takes a while for a big tree, can happen
// without holding the lock.
func (c *Local) trash(path string) (string, error) {
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".evicted-%d-%s", time.Now().UnixNano(), filepath.Base(path)))
	return tmp, os.Rename(path, tmp)
}

// removeAll deletes trashed trees; what it cannot delete the next
// opening of the cache will.
func (c *Local) removeAll(paths []string) {
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			c.log.Warn("could not remove a tree from the local cache", "path", p, "error", err)
		}
	}
}
