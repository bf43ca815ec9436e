package worker

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"distbuild/digest"

	"github.com/hashicorp/go-hclog"
)

// blobCache is the worker's local copy of the artifacts it has staged, so
// that a chunk staged by many jobs is downloaded once. Without a bound it
// would grow until the disk was full and every job failed, so it keeps at
// most limit bytes: when a download takes it over, the least recently used
// blobs go until it is back under nine tenths of the limit (a margin, so
// that not every download evicts). A blob's last use is its file's
// modification time, touched on each use, so the order survives restarts.
//
// Blobs are handed out open: deleting a file someone has open leaves their
// copy readable, so eviction never pulls an artifact from under a job that
// is unpacking it.
type blobCache struct {
	dir   string
	limit int64 // zero: no limit
	log   hclog.Logger

	mu      sync.Mutex
	entries map[digest.Hash]*cachedBlob
	used    int64
}

type cachedBlob struct {
	size    int64
	lastUse time.Time
}

// openBlobCache reads what dir holds, removing downloads a crash cut
// short (the cache client's temporary files, whose names start with a dot;
// blobs are named by their hash) and anything over the limit.
func openBlobCache(dir string, limit int64, log hclog.Logger) (*blobCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	c := &blobCache{dir: dir, limit: limit, log: log, entries: map[digest.Hash]*cachedBlob{}}
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
		c.entries[h] = &cachedBlob{size: info.Size(), lastUse: info.ModTime()}
		c.used += info.Size()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	log.Info("local blob cache opened", "dir", dir, "blobs", len(c.entries), "bytes", c.used, "limit", limit)
	c.evictLocked()
	return c, nil
}

func (c *blobCache) path(h digest.Hash) string { return filepath.Join(c.dir, h.String()) }

// open returns blob d opened for reading, calling download to fetch it
// into place first when the cache lacks it.
func (c *blobCache) open(ctx context.Context, d digest.Digest, download func(ctx context.Context, path string) error) (*os.File, error) {
	if f, ok := c.openCached(d); ok {
		return f, nil
	}
	path := c.path(d.Hash())
	if err := download(ctx, path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		// Another job's download evicted it in the moment between; a
		// second download is worth it.
		if err := download(ctx, path); err != nil {
			return nil, err
		}
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[d.Hash()]; ok { // a concurrent download added it
		c.used -= old.size
	}
	c.entries[d.Hash()] = &cachedBlob{size: d.Size(), lastUse: time.Now()}
	c.used += d.Size()
	c.evictLocked()
	return f, nil
}

// openCached opens a cached blob and records the use. A file that is not
// there or has the wrong size (damaged behind the worker's back) is
// forgotten, so the caller downloads it again.
func (c *blobCache) openCached(d digest.Digest) (*os.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[d.Hash()]
	if !ok {
		return nil, false
	}
	f, err := os.Open(c.path(d.Hash()))
	var info os.FileInfo
	if err == nil {
		info, err = f.Stat()
	}
	if err != nil || info.Size() != d.Size() {
		if f != nil {
			f.Close()
		}
		c.used -= e.size
		delete(c.entries, d.Hash())
		return nil, false
	}
	e.lastUse = time.Now()
	os.Chtimes(f.Name(), time.Time{}, e.lastUse) // best effort: only the order after a restart depends on it
	return f, true
}

// evictLocked deletes least recently used blobs while the cache is over
// its limit, down to nine tenths of it.
func (c *blobCache) evictLocked() {
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
	}
	c.log.Info("evicted least recently used blobs from the local cache", "blobs", evicted, "bytes", freed, "used", c.used, "limit", c.limit)
}
