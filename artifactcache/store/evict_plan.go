package store

import (
	"bytes"
	"cmp"
	"slices"

	"distbuild/artifactcache/digest"
)

// victim is the unit of eviction: a whole artifact (its manifest and the
// blobs no other manifest names), or a blob no manifest names. Evicting
// whole artifacts keeps the cache from holding half an artifact that no
// build can use.
type victim struct {
	manifest    *digest.CacheKey // nil for a lone blob
	blobs       []digest.Hash    // blobs freed by evicting this unit
	bytes       int64
	lastAccess  int64
	tieBreakKey []byte
}

// victims lists what could be evicted now, least recently used first. An
// artifact counts as used when its manifest or any of its blobs was. Units
// with a pinned blob are left out: someone is reading or scrubbing it.
// Blobs shared with other manifests stay; once their last manifest goes
// they become lone blobs and are candidates in their own right.
func (c *catalog) victims() []victim {
	var vs []victim
	for k, m := range c.manifests {
		v := victim{manifest: &k, lastAccess: m.lastAccess, tieBreakKey: append([]byte{1}, k[:]...)}
		pinned := false
		for _, h := range m.blobs {
			e := c.blobs[h]
			v.lastAccess = max(v.lastAccess, e.lastAccess)
			if e.users == 1 {
				v.blobs = append(v.blobs, h)
				v.bytes += e.size
				pinned = pinned || c.pins[h] > 0
			}
		}
		if !pinned {
			vs = append(vs, v)
		}
	}
	for h, e := range c.blobs {
		if e.users == 0 && c.pins[h] == 0 {
			vs = append(vs, victim{blobs: []digest.Hash{h}, bytes: e.size, lastAccess: e.lastAccess, tieBreakKey: append([]byte{0}, h[:]...)})
		}
	}
	slices.SortFunc(vs, func(a, b victim) int {
		return cmp.Or(cmp.Compare(a.lastAccess, b.lastAccess), bytes.Compare(a.tieBreakKey, b.tieBreakKey))
	})
	return vs
}
