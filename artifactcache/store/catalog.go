package store

import (
	"bytes"
	"slices"

	"distbuild/digest"
)

// catalog is the in-memory picture of the store: which blobs and manifests
// exist, how big they are, when they were last used and which are open. It
// does no I/O; the Store changes it under its mutex after the index has
// durably recorded the same change, so lookups (FindMissing of thousands of
// digests, opening a blob) cost a map access and never a bbolt transaction.
type catalog struct {
	blobs     map[digest.Hash]*blobEntry
	manifests map[digest.CacheKey]*manifestEntry
	// pins counts open readers and scrubs per blob; eviction skips a
	// pinned blob so nobody's file disappears under them.
	pins map[digest.Hash]int
	// storing holds the keys whose manifests are being written to the
	// index outside the store's lock; it closes each channel when done.
	// Eviction leaves their current manifests alone, and a second
	// PutManifest of the same key waits.
	storing map[digest.CacheKey]chan struct{}
	// used is the size of all stored blobs; reserved is the content
	// uploads in progress have received so far, so concurrent uploads
	// cannot overshoot the limit together.
	used, reserved int64
	// Access times changed since the last flush to the index. Batching
	// them keeps reads from turning into write transactions.
	dirtyBlobs     map[digest.Hash]struct{}
	dirtyManifests map[digest.CacheKey]struct{}
	// evictions and evictedBytes count the artifacts (or lone blobs)
	// evicted since the store opened, and their size, for metrics.
	evictions, evictedBytes int64
}

type blobEntry struct {
	size       int64
	lastAccess int64 // Unix nanoseconds
	users      int   // manifests naming this blob
}

type manifestEntry struct {
	blobs      []digest.Hash // without duplicates
	lastAccess int64
}

func newCatalog() *catalog {
	return &catalog{
		blobs:          map[digest.Hash]*blobEntry{},
		manifests:      map[digest.CacheKey]*manifestEntry{},
		pins:           map[digest.Hash]int{},
		storing:        map[digest.CacheKey]chan struct{}{},
		dirtyBlobs:     map[digest.Hash]struct{}{},
		dirtyManifests: map[digest.CacheKey]struct{}{},
	}
}

// hasBlob reports whether exactly this blob (hash and size) is stored.
func (c *catalog) hasBlob(d digest.Digest) bool {
	e, ok := c.blobs[d.Hash()]
	return ok && e.size == d.Size()
}

func (c *catalog) addBlob(d digest.Digest, now int64) {
	c.blobs[d.Hash()] = &blobEntry{size: d.Size(), lastAccess: now}
	c.used += d.Size()
}

// removeBlob forgets a blob. Callers remove the manifests using it first.
func (c *catalog) removeBlob(h digest.Hash) {
	if e, ok := c.blobs[h]; ok {
		c.used -= e.size
		delete(c.blobs, h)
		delete(c.dirtyBlobs, h)
	}
}

func (c *catalog) addManifest(k digest.CacheKey, blobs []digest.Hash, now int64) {
	for _, h := range blobs {
		c.blobs[h].users++
	}
	c.manifests[k] = &manifestEntry{blobs: blobs, lastAccess: now}
}

func (c *catalog) removeManifest(k digest.CacheKey) {
	m, ok := c.manifests[k]
	if !ok {
		return
	}
	for _, h := range m.blobs {
		if e, ok := c.blobs[h]; ok {
			e.users--
		}
	}
	delete(c.manifests, k)
	delete(c.dirtyManifests, k)
}

// manifestsUsing lists the manifests naming a blob. It scans every
// manifest, which is fine for its callers: losing a blob to corruption or
// to someone deleting files is rare, and eviction never needs it.
func (c *catalog) manifestsUsing(h digest.Hash) []digest.CacheKey {
	var keys []digest.CacheKey
	for k, m := range c.manifests {
		if slices.Contains(m.blobs, h) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b digest.CacheKey) int { return bytes.Compare(a[:], b[:]) })
	return keys
}

func (c *catalog) touchBlob(h digest.Hash, now int64) {
	if e, ok := c.blobs[h]; ok && e.lastAccess < now {
		e.lastAccess = now
		c.dirtyBlobs[h] = struct{}{}
	}
}

func (c *catalog) touchManifest(k digest.CacheKey, now int64) {
	if m, ok := c.manifests[k]; ok && m.lastAccess < now {
		m.lastAccess = now
		c.dirtyManifests[k] = struct{}{}
	}
}

func (c *catalog) pin(h digest.Hash) { c.pins[h]++ }

func (c *catalog) unpin(h digest.Hash) {
	if c.pins[h]--; c.pins[h] <= 0 {
		delete(c.pins, h)
	}
}

// takeDirty returns the access times to flush and forgets that they were
// dirty; on a failed flush the caller marks them dirty again.
func (c *catalog) takeDirty() (map[digest.Hash]int64, map[digest.CacheKey]int64) {
	blobs := make(map[digest.Hash]int64, len(c.dirtyBlobs))
	for h := range c.dirtyBlobs {
		blobs[h] = c.blobs[h].lastAccess
	}
	manifests := make(map[digest.CacheKey]int64, len(c.dirtyManifests))
	for k := range c.dirtyManifests {
		manifests[k] = c.manifests[k].lastAccess
	}
	clear(c.dirtyBlobs)
	clear(c.dirtyManifests)
	return blobs, manifests
}

// markDirty puts back access times whose flush failed, unless the entry
// has gone meanwhile.
func (c *catalog) markDirty(blobs map[digest.Hash]int64, manifests map[digest.CacheKey]int64) {
	for h := range blobs {
		if _, ok := c.blobs[h]; ok {
			c.dirtyBlobs[h] = struct{}{}
		}
	}
	for k := range manifests {
		if _, ok := c.manifests[k]; ok {
			c.dirtyManifests[k] = struct{}{}
		}
	}
}
