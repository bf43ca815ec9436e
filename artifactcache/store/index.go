package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"distbuild/digest"

	bolt "go.etcd.io/bbolt"
)

// Bucket names in the index. Blob sizes and manifests change only when
// something is added or removed; access times change on every read and are
// kept in buckets of their own so flushing them rewrites 8 bytes per entry,
// never a manifest.
const (
	bucketBlobs          = "blobs"           // hash -> size, big-endian uint64
	bucketBlobAccess     = "blob_access"     // hash -> last access, Unix nanoseconds
	bucketBlobChecksums  = "blob_checksums"  // hash -> blockChecksums.encode()
	bucketManifests      = "manifests"       // cache key -> deterministic protobuf Manifest
	bucketManifestAccess = "manifest_access" // cache key -> last access, Unix nanoseconds
)

var allBuckets = []string{bucketBlobs, bucketBlobAccess, bucketBlobChecksums, bucketManifests, bucketManifestAccess}

// index is the durable record of what the store holds. Every method runs one
// transaction, so each change is all-or-nothing across crashes.
type index struct {
	db *bolt.DB

	// Manifests are written by group commit (putManifest).
	mu        sync.Mutex
	manifests []*manifestWrite // waiting for the next transaction
	writing   bool             // a transaction of manifests is being committed
}

// manifestWrite is one manifest waiting to be written, and where its
// outcome goes.
type manifestWrite struct {
	key  digest.CacheKey
	raw  []byte
	now  int64
	done chan error
}

// ErrLocked is why a store cannot be opened: another process (a running
// trove, or a scrub) has it open. Open fails with it at once instead of
// hanging on bbolt's file lock, and callers recognise it with errors.Is to
// tell the operator what to do instead.
var ErrLocked = errors.New("index is locked: is another trove using this directory?")

func openIndex(path string) (*index, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &index{db: db}, nil
}

func (ix *index) close() error { return ix.db.Close() }

// indexContents is everything in the index, copied out of the transaction.
type indexContents struct {
	blobSizes  map[digest.Hash]int64
	blobAccess map[digest.Hash]int64
	// checksummed holds the blobs with a block checksum record, so
	// records left by a crash for blobs the index lacks can be dropped;
	// the records themselves are read when a blob is opened.
	checksummed    map[digest.Hash]bool
	manifests      map[digest.CacheKey][]byte
	manifestAccess map[digest.CacheKey]int64
}

// load reads the whole index; the store keeps its catalog in memory so that
// lookups on the hot path never touch bbolt.
func (ix *index) load() (indexContents, error) {
	c := indexContents{
		blobSizes:      map[digest.Hash]int64{},
		blobAccess:     map[digest.Hash]int64{},
		checksummed:    map[digest.Hash]bool{},
		manifests:      map[digest.CacheKey][]byte{},
		manifestAccess: map[digest.CacheKey]int64{},
	}
	err := ix.db.View(func(tx *bolt.Tx) error {
		if err := forEachHashed(tx, bucketBlobs, func(k [32]byte, v []byte) { c.blobSizes[k] = decodeInt(v) }); err != nil {
			return err
		}
		if err := forEachHashed(tx, bucketBlobAccess, func(k [32]byte, v []byte) { c.blobAccess[k] = decodeInt(v) }); err != nil {
			return err
		}
		if err := forEachHashed(tx, bucketBlobChecksums, func(k [32]byte, _ []byte) { c.checksummed[k] = true }); err != nil {
			return err
		}
		if err := forEachHashed(tx, bucketManifests, func(k [32]byte, v []byte) { c.manifests[k] = append([]byte(nil), v...) }); err != nil {
			return err
		}
		return forEachHashed(tx, bucketManifestAccess, func(k [32]byte, v []byte) { c.manifestAccess[k] = decodeInt(v) })
	})
	return c, err
}

// forEachHashed visits a bucket whose keys are 32-byte names, refusing
// anything else as index corruption.
func forEachHashed(tx *bolt.Tx, bucket string, fn func(k [32]byte, v []byte)) error {
	return tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error {
		if len(k) != 32 {
			return fmt.Errorf("index bucket %s: key of %d bytes, want 32", bucket, len(k))
		}
		fn([32]byte(k), v)
		return nil
	})
}

// putBlob records a blob whose file is already in place.
func (ix *index) putBlob(d digest.Digest, sums blockChecksums, now int64) error {
	h := d.Hash()
	return ix.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bucketBlobs)).Put(h[:], encodeInt(d.Size())); err != nil {
			return err
		}
		if err := tx.Bucket([]byte(bucketBlobChecksums)).Put(h[:], sums.encode()); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketBlobAccess)).Put(h[:], encodeInt(now))
	})
}

// putChecksums replaces a stored blob's block checksums, for a record that
// was missing or damaged.
func (ix *index) putChecksums(h digest.Hash, sums blockChecksums) error {
	return ix.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketBlobChecksums)).Put(h[:], sums.encode())
	})
}

// checksums reads a blob's block checksums; ok is false when the record
// is missing or malformed (a store from before block checksums, or a
// damaged index), which the first read of the blob repairs (see Blob).
func (ix *index) checksums(d digest.Digest) (sums blockChecksums, ok bool, err error) {
	h := d.Hash()
	err = ix.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(bucketBlobChecksums)).Get(h[:]); v != nil {
			var decodeErr error
			sums, decodeErr = decodeBlockChecksums(v, d.Size())
			ok = decodeErr == nil
		}
		return nil
	})
	return sums, ok, err
}

// putManifest records a manifest whose blobs are all present.
// putManifest records a manifest durably. Manifests stored at the same
// moment (a farm's slots finishing together) share a transaction and its
// fsync: the first caller commits at once, and those arriving while it
// commits are written together by one of them when it is done, so nobody
// waits for a timer and a busy trove pays one fsync per group, not per
// manifest.
func (ix *index) putManifest(k digest.CacheKey, raw []byte, now int64) error {
	w := &manifestWrite{key: k, raw: raw, now: now, done: make(chan error, 1)}
	ix.mu.Lock()
	ix.manifests = append(ix.manifests, w)
	if ix.writing {
		ix.mu.Unlock()
		return <-w.done
	}
	ix.writing = true
	for len(ix.manifests) > 0 {
		group := ix.manifests
		ix.manifests = nil
		ix.mu.Unlock()
		err := ix.db.Update(func(tx *bolt.Tx) error {
			for _, m := range group {
				if err := tx.Bucket([]byte(bucketManifests)).Put(m.key[:], m.raw); err != nil {
					return err
				}
				if err := tx.Bucket([]byte(bucketManifestAccess)).Put(m.key[:], encodeInt(m.now)); err != nil {
					return err
				}
			}
			return nil
		})
		for _, m := range group {
			m.done <- err
		}
		ix.mu.Lock()
	}
	ix.writing = false
	ix.mu.Unlock()
	return <-w.done
}

// manifest returns a copy of a stored manifest's bytes, or nil.
func (ix *index) manifest(k digest.CacheKey) ([]byte, error) {
	var raw []byte
	err := ix.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(bucketManifests)).Get(k[:]); v != nil {
			raw = append([]byte(nil), v...)
		}
		return nil
	})
	return raw, err
}

// remove forgets blobs and manifests in one transaction, so that no crash
// can leave a manifest naming a blob the index no longer has.
func (ix *index) remove(blobs []digest.Hash, manifests []digest.CacheKey) error {
	return ix.db.Update(func(tx *bolt.Tx) error {
		for _, h := range blobs {
			for _, b := range []string{bucketBlobs, bucketBlobAccess, bucketBlobChecksums} {
				if err := tx.Bucket([]byte(b)).Delete(h[:]); err != nil {
					return err
				}
			}
		}
		for _, k := range manifests {
			for _, b := range []string{bucketManifests, bucketManifestAccess} {
				if err := tx.Bucket([]byte(b)).Delete(k[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// writeAccess stores a batch of access times in one transaction.
func (ix *index) writeAccess(blobs map[digest.Hash]int64, manifests map[digest.CacheKey]int64) error {
	return ix.db.Update(func(tx *bolt.Tx) error {
		for h, t := range blobs {
			if err := tx.Bucket([]byte(bucketBlobAccess)).Put(h[:], encodeInt(t)); err != nil {
				return err
			}
		}
		for k, t := range manifests {
			if err := tx.Bucket([]byte(bucketManifestAccess)).Put(k[:], encodeInt(t)); err != nil {
				return err
			}
		}
		return nil
	})
}

func encodeInt(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// decodeInt reads an 8-byte value; anything shorter reads as 0, which for
// an access time means "long ago" and for a size is caught by reconcile.
func decodeInt(v []byte) int64 {
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}
