package cache

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"distbuild/digest"
	"distbuild/internal/atomicfile"
)

// Local is the worker's local copy of the blobs its steps download, so
// that a chunk staged by many jobs is downloaded once. It wraps another
// Cache (the trove's), as Buildbarn's caching fetcher wraps its blob
// access: downloads are served from disk when the blob is there and
// fetched through the wrapped cache (and kept) when not; manifests and
// uploads pass straight through.
//
// Without a bound it would grow until the disk was full and every job
// failed, so it keeps at most limit bytes: when a download takes it over,
// the least recently used blobs go until it is back under nine tenths of
// the limit (a margin, so that not every download evicts). A blob's last
// use is its file's modification time, touched on each use, so the order
// survives restarts.
//
// A download is handed to the caller as a hard link to the kept copy
// (a copy when the two paths are on different file systems), so eviction
// never pulls an artifact from under a job that is unpacking it.
//
// It also keeps blobs unpacked, once each, for steps to link their files
// into staging areas (see Tree); those trees count against the same limit.
type Local struct {
	Cache // the wrapped cache, which manifests and uploads go straight to

	dir   string
	limit int64 // zero: no limit
	log   hclog.Logger

	mu      sync.Mutex
	entries map[digest.Hash]*localBlob
	// trees are the blobs unpacked (see Tree), by name.
	trees map[string]*localTree
	// used counts blobs and trees.
	used int64
	// hits, misses and evictions count downloads served from disk,
	// downloads that went to the wrapped cache, and blobs and trees
	// evicted; treeHits and treeMisses count trees found and unpacked.
	hits, misses, evictions int64
	treeHits, treeMisses    int64
}

// LocalStats describe the local copy, for metrics.
type LocalStats struct {
	Blobs, Trees int
	// Bytes is what blobs and trees take together.
	Bytes, Limit            int64
	Hits, Misses, Evictions int64
	// TreeHits and TreeMisses count trees found unpacked and unpacked.
	TreeHits, TreeMisses int64
}

// Stats returns the local copy's size and how it has served downloads.
func (c *Local) Stats() LocalStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return LocalStats{Blobs: len(c.entries), Trees: len(c.trees), Bytes: c.used, Limit: c.limit, Hits: c.hits, Misses: c.misses, Evictions: c.evictions, TreeHits: c.treeHits, TreeMisses: c.treeMisses}
}

type localBlob struct {
	size    int64
	lastUse time.Time
}

// NewLocal keeps a local copy of the blobs downloaded through backend in
// dir, at most limit bytes of them (zero: no limit). It reads what dir
// holds, removing downloads a crash cut short (the cache client's
// temporary files, whose names start with a dot; blobs are named by their
// hash), trees it cannot trust (see Tree), and anything over the limit.
func NewLocal(dir string, limit int64, backend Cache, log hclog.Logger) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	c := &Local{Cache: backend, dir: dir, limit: limit, log: log, entries: map[digest.Hash]*localBlob{}, trees: map[string]*localTree{}}
	for _, e := range names {
		path := filepath.Join(dir, e.Name())
		if e.Name() == treesDir && e.IsDir() {
			continue
		}
		if strings.HasPrefix(e.Name(), ".") {
			os.Remove(path)
			continue
		}
		h, err := digest.ParseHash(e.Name())
		info, ierr := e.Info()
		if err != nil || ierr != nil || !info.Mode().IsRegular() {
			log.Warn("unexpected file in the blob cache; leaving it alone", "path", path)
			continue
		}
		c.entries[h] = &localBlob{size: info.Size(), lastUse: info.ModTime()}
		c.used += info.Size()
	}
	if err := c.loadTrees(); err != nil {
		return nil, err
	}
	log.Info("local blob cache opened", "dir", dir, "blobs", len(c.entries), "trees", len(c.trees), "bytes", c.used, "limit", limit)
	c.mu.Lock()
	trash := c.evictLocked()
	c.mu.Unlock()
	c.removeAll(trash)
	return c, nil
}

func (c *Local) path(h digest.Hash) string { return filepath.Join(c.dir, h.String()) }

// DownloadWithProgress puts blob d at path from the local copy, first
// downloading it through the wrapped cache when there is none.
func (c *Local) DownloadWithProgress(ctx context.Context, d digest.Digest, path string, progress func()) error {
	if ok, err := c.placeCached(d, path); ok || err != nil {
		return err
	}
	c.mu.Lock()
	c.misses++
	c.mu.Unlock()
	kept := c.path(d.Hash())
	for attempt := 0; ; attempt++ {
		if err := c.Cache.DownloadWithProgress(ctx, d, kept, progress); err != nil {
			return err
		}
		c.mu.Lock()
		err := place(kept, path)
		if os.IsNotExist(err) && attempt == 0 {
			// Another job's download evicted it in the moment between;
			// a second download is worth it.
			c.mu.Unlock()
			continue
		}
		var trash []string
		if err == nil {
			if old, ok := c.entries[d.Hash()]; ok { // a concurrent download added it
				c.used -= old.size
			}
			c.entries[d.Hash()] = &localBlob{size: d.Size(), lastUse: time.Now()}
			c.used += d.Size()
			trash = c.evictLocked()
		}
		c.mu.Unlock()
		c.removeAll(trash)
		return err
	}
}

// placeCached puts a kept blob at path and records the use; ok is false
// when there is none. A file that is not there or has the wrong size
// (damaged behind the worker's back) is forgotten, so the caller downloads
// it again.
func (c *Local) placeCached(d digest.Digest, path string) (ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[d.Hash()]
	if !ok {
		return false, nil
	}
	kept := c.path(d.Hash())
	if info, err := os.Stat(kept); err != nil || info.Size() != d.Size() {
		c.used -= e.size
		delete(c.entries, d.Hash())
		return false, nil
	}
	if err := place(kept, path); err != nil {
		return false, err
	}
	e.lastUse = time.Now()
	os.Chtimes(kept, time.Time{}, e.lastUse) // best effort: only the order after a restart depends on it
	c.hits++
	return true, nil
}

// place makes path a hard link to the kept blob, replacing what path
// held, or, across file systems, a copy that appears whole or not at all.
func place(kept, path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	err := os.Link(kept, path)
	if err == nil || os.IsNotExist(err) {
		return err
	}
	return atomicfile.WriteWith(path, 0o644, func(w io.Writer) error {
		f, err := os.Open(kept)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// evictLocked deletes least recently used blobs and trees while the cache
// is over its limit, down to nine tenths of it, leaving trees a step holds
// or is unpacking. Evicted trees are only renamed away: it returns them for
// the caller to remove once it has let go of the lock.
func (c *Local) evictLocked() (trash []string) {
	if c.limit <= 0 || c.used <= c.limit {
		return nil
	}
	type victim struct {
		blob    digest.Hash
		tree    string // "" for a blob
		lastUse time.Time
	}
	var victims []victim
	for h, e := range c.entries {
		victims = append(victims, victim{blob: h, lastUse: e.lastUse})
	}
	for name, e := range c.trees {
		if e.pins == 0 && e.unpacking == nil {
			victims = append(victims, victim{tree: name, lastUse: e.lastUse})
		}
	}
	slices.SortFunc(victims, func(a, b victim) int { return a.lastUse.Compare(b.lastUse) })
	target := c.limit / 10 * 9
	var evicted int
	var freed int64
	for _, v := range victims {
		if c.used <= target {
			break
		}
		var size int64
		if v.tree == "" {
			if err := os.Remove(c.path(v.blob)); err != nil && !os.IsNotExist(err) {
				c.log.Warn("could not evict a blob from the local cache", "hash", v.blob, "error", err)
				continue
			}
			size = c.entries[v.blob].size
			delete(c.entries, v.blob)
		} else {
			old, err := c.trash(c.treePath(v.tree))
			if err != nil && !os.IsNotExist(err) {
				c.log.Warn("could not evict a tree from the local cache", "tree", v.tree, "error", err)
				continue
			}
			if err == nil {
				trash = append(trash, old)
			}
			size = c.trees[v.tree].size
			delete(c.trees, v.tree)
		}
		c.used -= size
		freed += size
		evicted++
		c.evictions++
	}
	if c.used > c.limit {
		c.log.Warn("the local cache stays over its limit: running steps hold what is left", "used", c.used, "limit", c.limit)
	}
	c.log.Info("evicted least recently used blobs and trees from the local cache", "evicted", evicted, "bytes", freed, "used", c.used, "limit", c.limit)
	return trash
}
