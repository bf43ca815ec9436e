// Package store keeps the artifact cache on local disk: immutable blobs
// named by their SHA-256, and manifests naming the blobs each build step
// produced.
//
// It exists to give the rest of the farm three guarantees. First, a blob is
// either wholly present and correct under its name or absent: uploads go to
// a temporary file, are hashed, fsynced and renamed into place, and the
// index (bbolt) records only what is in place. Second, no damaged byte is
// served: each block of a blob has a checksum, taken when its SHA-256 was
// checked, and every read checks the blocks it sends. Third, a manifest
// the store answers with implies every blob it names: manifests naming
// absent blobs are refused, and whatever removes a blob (eviction,
// corruption found by a read or a scrub) removes the manifests using it in
// the same index transaction, so the step is rebuilt instead of failing
// forever.
//
// The catalog (sizes, manifests, access times) also lives in memory, so
// lookups never touch bbolt; only opening a blob reads its checksums. The
// index is written only when something is added or removed, plus batched
// access times for least-recently-used eviction.
//
// A store directory holds:
//
//	blobs/ab/abcdef...   each blob, named by its hash, sharded by its first byte
//	tmp/                 uploads in progress (emptied on open)
//	quarantine/          corrupt blobs, moved aside for a person to examine
//	index.db             the bbolt index: sizes, block checksums, manifests, access times
package store

import (
	"fmt"
	"sync"
	"time"

	"distbuild/clock"

	"github.com/hashicorp/go-hclog"
)

// DefaultAccessFlushInterval bounds how much least-recently-used
// information a crash can lose: at most this long's worth of access times.
const DefaultAccessFlushInterval = 10 * time.Second

// Options configures a Store.
type Options struct {
	// Dir is the store directory; it is created if missing.
	Dir string
	// MaxSizeBytes caps the total size of blobs. Uploads evict least
	// recently used artifacts to stay under it. Zero or negative means no
	// limit, for offline tools such as a scrub that must not evict.
	MaxSizeBytes int64
	// Clock times accesses and flushes; nil means the system clock.
	Clock clock.Clock
	// Logger receives what the store does; nil discards it.
	Logger hclog.Logger
	// AccessFlushInterval is how often access times are written to the
	// index; zero means DefaultAccessFlushInterval.
	AccessFlushInterval time.Duration
}

// Store is an open store directory. It is safe for concurrent use.
type Store struct {
	dirs    layout
	ix      *index
	clock   clock.Clock
	log     hclog.Logger
	maxSize int64

	mu  sync.Mutex // guards cat and evictQueue, and orders index and file changes with them
	cat *catalog
	// evictQueue holds victims listed by an earlier eviction, least
	// recently used first, for the next ones (see makeRoomLocked).
	evictQueue []victim
	// indexErr is the latest periodic index write's error (see Err).
	indexErr error

	stopFlush chan struct{}
	flushDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) a store directory, repairs whatever a
// crash left behind (see reconcile) and starts flushing access times. Only
// one process can have a directory open; a second one gets an error.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("store directory not set")
	}
	if opts.Clock == nil {
		opts.Clock = clock.System
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.AccessFlushInterval <= 0 {
		opts.AccessFlushInterval = DefaultAccessFlushInterval
	}
	s := &Store{
		dirs:      layout{root: opts.Dir},
		clock:     opts.Clock,
		log:       opts.Logger,
		maxSize:   opts.MaxSizeBytes,
		stopFlush: make(chan struct{}),
		flushDone: make(chan struct{}),
	}
	if err := s.dirs.create(); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	ix, err := openIndex(s.dirs.indexPath())
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	s.ix = ix
	if err := s.load(); err != nil {
		ix.close()
		return nil, fmt.Errorf("load index: %w", err)
	}
	if err := s.reconcile(); err != nil {
		ix.close()
		return nil, fmt.Errorf("reconcile store with index: %w", err)
	}
	s.mu.Lock()
	err = s.makeRoomLocked(0)
	s.mu.Unlock()
	if err != nil {
		ix.close()
		return nil, fmt.Errorf("evict down to the size limit: %w", err)
	}
	st := s.Stats()
	s.log.Info("store opened", "dir", opts.Dir, "blobs", st.Blobs, "manifests", st.Manifests, "used_bytes", st.UsedBytes, "max_bytes", st.MaxBytes)
	ticker := s.clock.NewTicker(opts.AccessFlushInterval)
	go s.flushLoop(ticker)
	return s, nil
}

// Close flushes access times and closes the index. Callers stop using the
// store first (a server finishes its in-flight requests).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopFlush)
		<-s.flushDone
		flushErr := s.FlushAccessTimes()
		closeErr := s.ix.close()
		if flushErr != nil {
			s.closeErr = flushErr
		} else {
			s.closeErr = closeErr
		}
	})
	return s.closeErr
}

// Stats describes how full the store is.
type Stats struct {
	// Blobs and Manifests count what is stored.
	Blobs, Manifests int
	// UsedBytes is the size of all stored blobs.
	UsedBytes int64
	// ReservedBytes is the room held by uploads in progress: the content
	// they have received so far.
	ReservedBytes int64
	// MaxBytes is the configured limit; zero or negative means none.
	MaxBytes int64
	// Evictions counts the artifacts (or lone blobs) evicted since the
	// store opened; EvictedBytes is their size.
	Evictions, EvictedBytes int64
}

// Stats returns the current fill level, for logs and tests.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Blobs: len(s.cat.blobs), Manifests: len(s.cat.manifests), UsedBytes: s.cat.used, ReservedBytes: s.cat.reserved, MaxBytes: s.maxSize,
		Evictions: s.cat.evictions, EvictedBytes: s.cat.evictedBytes}
}

// Err is why the store cannot be used now, or nil: the latest write of
// its index failed (a full disk, an I/O error), so what it is asked to
// keep may not be kept. It clears once a write succeeds again.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.indexErr
}

func (s *Store) now() int64 { return s.clock.Now().UnixNano() }
