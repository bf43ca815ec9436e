package store

import (
	"bytes"
	"cmp"
	"slices"

	"distbuild/digest"
)

// victim is the unit of eviction: a whole artifact (its manifest and the
// blobs no other manifest names), or a blob no manifest names. Evicting
// whole artifacts keeps the cache from holding half an artifact that no
// build can use.
type victim struct {
	manifest    *digest.CacheKey // nil for a lone blob
	entry       *manifestEntry   // the manifest as listed, nil for a lone blob
	blobs       []digest.Hash    // blobs freed by evicting this unit
	bytes       int64
	lastAccess  int64
	tieBreakKey []byte
}

// victims lists what could be evicted now, least recently used first, at
// most limit of them. An
// artifact counts as used when its manifest or any of its blobs was. Units
// with a pinned blob are left out: someone is reading or scrubbing it; so
// are manifests being replaced.
// Blobs shared with other manifests stay; once their last manifest goes
// they become lone blobs and are candidates in their own right.
func (c *catalog) victims(limit int) []victim {
	var vs []victim
	for k, m := range c.manifests {
		if c.storing[k] != nil {
			continue // being replaced
		}
		v := victim{manifest: &k, entry: m, lastAccess: m.lastAccess, tieBreakKey: append([]byte{1}, k[:]...)}
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
	return slices.Clip(vs[:min(len(vs), limit)])
}

// stillEvictable reports whether a victim listed earlier may still be
// evicted as listed: its manifest and blobs are still stored, none was
// used since the listing, none is pinned, and its blobs are still named by
// its manifest alone (lone blobs by none). A victim that fails is skipped;
// if it becomes evictable again, a later listing finds it.
func (c *catalog) stillEvictable(v victim) bool {
	users := 0
	if v.manifest != nil {
		m, ok := c.manifests[*v.manifest]
		if !ok || m != v.entry || m.lastAccess > v.lastAccess || c.storing[*v.manifest] != nil {
			return false
		}
		for _, h := range m.blobs {
			if e, ok := c.blobs[h]; ok && e.lastAccess > v.lastAccess {
				return false
			}
		}
		users = 1
	}
	for _, h := range v.blobs {
		e, ok := c.blobs[h]
		if !ok || e.users != users || c.pins[h] > 0 || e.lastAccess > v.lastAccess {
			return false
		}
	}
	return true
}
