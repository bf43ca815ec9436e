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
type Local struct {
	Cache // the wrapped cache, which manifests and uploads go straight to

	dir   string
	limit int64 // zero: no limit
	log   hclog.Logger

	mu      sync.Mutex
	entries map[digest.Hash]*localBlob
	used    int64
	// hits, misses and evictions count downloads served from disk,
	// downloads that went to the wrapped cache, and blobs evicted.
	hits, misses, evictions int64
}

// LocalStats describe the local copy, for metrics.
type LocalStats struct {
	Blobs                   int
	Bytes, Limit            int64
	Hits, Misses, Evictions int64
}

// Stats returns the local copy's size and how it has served downloads.
func (c *Local) Stats() LocalStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return LocalStats{Blobs: len(c.entries), Bytes: c.used, Limit: c.limit, Hits: c.hits, Misses: c.misses, Evictions: c.evictions}
}

type localBlob struct {
	size    int64
	lastUse time.Time
}

// NewLocal keeps a local copy of the blobs downloaded through backend in
// dir, at most limit bytes of them (zero: no limit). It reads what dir
// holds, removing downloads a crash cut short (the cache client's
// temporary files, whose names start with a dot; blobs are named by their
// hash) and anything over the limit.
func NewLocal(dir string, limit int64, backend Cache, log hclog.Logger) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	c := &Local{Cache: backend, dir: dir, limit: limit, log: log, entries: map[digest.Hash]*localBlob{}}
	for _, e := range names {
		path := filepath.Join(dir, e.Name())
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
	c.mu.Lock()
	defer c.mu.Unlock()
	log.Info("local blob cache opened", "dir", dir, "blobs", len(c.entries), "bytes", c.used, "limit", limit)
	c.evictLocked()
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
		if err == nil {
			if old, ok := c.entries[d.Hash()]; ok { // a concurrent download added it
				c.used -= old.size
			}
			c.entries[d.Hash()] = &localBlob{size: d.Size(), lastUse: time.Now()}
			c.used += d.Size()
			c.evictLocked()
		}
		c.mu.Unlock()
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

// evictLocked deletes least recently used blobs while the cache is over
// its limit, down to nine tenths of it.
func (c *Local) evictLocked() {
	if c.limit <= 0 || c.used <= c.limit {
		return
	}
	hashes := make([]digest.Hash, 0, len(c.entries))
	for h := range c.entries {
		hashes = append(hashes, h)
	}
	slices.SortFunc(hashes, func(a, b digest.Hash) int { return c.entries[a].lastUse.Compare(c.entries[b].lastUse) })
	target := c.limit / 10 * 9
	var evicted int
	var freed int64
	for _, h := range hashes {
		if c.used <= target {
			break
		}
		if err := os.Remove(c.path(h)); err != nil && !os.IsNotExist(err) {
			c.log.Warn("could not evict a blob from the local cache", "hash", h, "error", err)
			continue
		}
		size := c.entries[h].size
		delete(c.entries, h)
		c.used -= size
		freed += size
		evicted++
		c.evictions++
	}
	c.log.Info("evicted least recently used blobs from the local cache", "blobs", evicted, "bytes", freed, "used", c.used, "limit", c.limit)
}
