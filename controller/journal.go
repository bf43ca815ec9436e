package controller

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"distbuild/clock"
	"distbuild/controller/statedb"
	"distbuild/notify"
	pb "distbuild/proto/distbuild/v1"
)

// Bucket names of the controller's state database.
const (
	bucketBuilds    = "builds"    // build id -> BuildSummary (request, state, times)
	bucketEvents    = "events"    // build id -> bucket of big-endian sequence -> BuildEvent
	bucketDurations = "durations" // step name -> big-endian estimated nanoseconds
	bucketChecks    = "checks"    // cache key -> CheckResult, the latest check of it
)

// defaultBackupInterval is how often the state database is backed up when
// Config.StateBackupInterval is unset: a lost database then costs at most
// ten minutes of history.
const defaultBackupInterval = 10 * time.Minute

// journal makes the controller's history durable. Events and build records
// are queued by whoever produces them and written by one goroutine, many to
// a transaction, so a busy farm pays one fsync per batch rather than per
// event. Events reach followers only after their batch is committed: nobody
// is ever told something a crash could take back.
type journal struct {
	db *bolt.DB // nil keeps everything in memory
	// failed is told when a batch cannot be written.
	failed func(error)
	// written counts the events written to the database.
	written prometheus.Counter
	log     hclog.Logger

	mu      sync.Mutex
	pending []journalEntry
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	backups sync.WaitGroup
}

// journalEntry is one thing to write and, for events, deliver.
type journalEntry struct {
	log     *eventLog        // set for events
	ev      *pb.BuildEvent   // the event; output events are delivered but not stored
	summary *pb.BuildSummary // set for build records
	// step and estimate record a step's expected duration.
	step     string
	estimate time.Duration
	// check records a reproducibility check's result.
	check *pb.CheckResult
	// forget deletes these builds and their events.
	forget []string
	// deliveries are notifications of the events in the same batch, for
	// notifier once they are durable.
	deliveries []*notify.Delivery
	notifier   *notify.Dispatcher
}

// openJournal opens cfg.StateFile, refusing a damaged or unexpectedly
// empty one (see package statedb), and backs it up every
// cfg.StateBackupInterval.
func openJournal(cfg Config, written prometheus.Counter) (*journal, error) {
	j := &journal{failed: cfg.OnStateError, written: written, log: cfg.Logger, wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	if path := cfg.StateFile; path != "" {
		db, err := statedb.Open(path)
		if err != nil {
			return nil, err
		}
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range []string{bucketBuilds, bucketEvents, bucketDurations, bucketChecks} {
				if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("preparing the state database %s: %w", path, err)
		}
		j.db = db
		every := cfg.StateBackupInterval
		if every <= 0 {
			every = defaultBackupInterval
		}
		j.backups.Add(1)
		go j.backUpEvery(cfg.Clock.NewTicker(every))
	}
	go j.run()
	return j, nil
}

// backUpEvery writes a rolling backup at every tick until close.
func (j *journal) backUpEvery(t clock.Ticker) {
	defer j.backups.Done()
	defer t.Stop()
	for {
		select {
		case <-t.C():
			j.backUp()
		case <-j.done:
			return
		}
	}
}

// backUp writes a rolling backup. A failure is only logged: the database
// itself is still being written, and the next attempt may succeed.
func (j *journal) backUp() {
	if path, err := statedb.RollingBackup(j.db); err != nil {
		j.log.Warn("cannot back up the state database", "error", err)
	} else {
		j.log.Debug("backed up the state database", "backup", path)
	}
}

func (j *journal) enqueue(e journalEntry) {
	j.mu.Lock()
	j.pending = append(j.pending, e)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// run writes batches until close, then writes what is left.
func (j *journal) run() {
	defer close(j.stopped)
	for {
		select {
		case <-j.wake:
			j.flush()
		case <-j.done:
			j.flush()
			return
		}
	}
}

func (j *journal) flush() {
	j.mu.Lock()
	batch := j.pending
	j.pending = nil
	j.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if j.db != nil {
		if err := j.db.Update(func(tx *bolt.Tx) error { return writeBatch(tx, batch) }); err != nil {
			// Disk full or an I/O error: the owner decides (the daemon
			// stops, so it never promises what it has not kept).
			j.failed(fmt.Errorf("writing the state database: %w", err))
		} else {
			n := 0
			for _, e := range batch {
				if e.ev != nil && e.ev.Sequence > 0 {
					n++
				}
			}
			j.written.Add(float64(n))
		}
	}
	for _, e := range batch {
		if e.log != nil {
			e.log.deliver(e.ev)
		}
		if e.notifier != nil {
			e.notifier.Submit(e.deliveries)
		}
	}
}

func writeBatch(tx *bolt.Tx, batch []journalEntry) error {
	builds, events := tx.Bucket([]byte(bucketBuilds)), tx.Bucket([]byte(bucketEvents))
	durations := tx.Bucket([]byte(bucketDurations))
	for _, e := range batch {
		switch {
		case len(e.deliveries) > 0:
			if err := notify.Persist(tx, e.deliveries); err != nil {
				return err
			}
		case len(e.forget) > 0:
			for _, id := range e.forget {
				if err := builds.Delete([]byte(id)); err != nil {
					return err
				}
				if err := events.DeleteBucket([]byte(id)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
					return err
				}
			}
		case e.check != nil:
			data, err := proto.Marshal(e.check)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte(bucketChecks)).Put([]byte(e.check.CacheKey), data); err != nil {
				return err
			}
		case e.step != "":
			if err := durations.Put([]byte(e.step), seqKey(uint64(e.estimate))); err != nil {
				return err
			}
		case e.summary != nil:
			data, err := proto.Marshal(e.summary)
			if err != nil {
				return err
			}
			if err := builds.Put([]byte(e.summary.BuildId), data); err != nil {
				return err
			}
		case e.ev != nil && e.ev.Sequence > 0:
			b, err := events.CreateBucketIfNotExists([]byte(e.ev.BuildId))
			if err != nil {
				return err
			}
			data, err := proto.Marshal(e.ev)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(e.ev.Sequence), data); err != nil {
				return err
			}
		}
	}
	return nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// storedBuild is a build as the database holds it.
type storedBuild struct {
	summary *pb.BuildSummary
	events  []*pb.BuildEvent
}

// load reads every build and its history, oldest first.
func (j *journal) load() ([]storedBuild, error) {
	if j.db == nil {
		return nil, nil
	}
	var out []storedBuild
	err := j.db.View(func(tx *bolt.Tx) error {
		events := tx.Bucket([]byte(bucketEvents))
		return tx.Bucket([]byte(bucketBuilds)).ForEach(func(id, data []byte) error {
			sb := storedBuild{summary: &pb.BuildSummary{}}
			if err := proto.Unmarshal(data, sb.summary); err != nil {
				return fmt.Errorf("build %s: %w", id, err)
			}
			if b := events.Bucket(id); b != nil {
				err := b.ForEach(func(_, data []byte) error {
					ev := &pb.BuildEvent{}
					if err := proto.Unmarshal(data, ev); err != nil {
						return fmt.Errorf("build %s: an event: %w", id, err)
					}
					sb.events = append(sb.events, ev)
					return nil
				})
				if err != nil {
					return err
				}
			}
			out = append(out, sb)
			return nil
		})
	})
	return out, err
}

// loadDurations reads every step's expected duration.
func (j *journal) loadDurations() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	if j.db == nil {
		return out, nil
	}
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketDurations)).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = time.Duration(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	return out, err
}

// loadChecks reads the latest check of every cache key checked. A record
// that cannot be decoded is skipped with a warning: it costs one step's
// check history, not the controller's start.
func (j *journal) loadChecks() (map[string]*pb.CheckResult, error) {
	out := map[string]*pb.CheckResult{}
	if j.db == nil {
		return out, nil
	}
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketChecks)).ForEach(func(k, v []byte) error {
			r := &pb.CheckResult{}
			if err := proto.Unmarshal(v, r); err != nil || r.CacheKey != string(k) {
				j.log.Warn("skipping a damaged check record in the state database", "cache_key", string(k), "error", err)
				return nil
			}
			out[string(k)] = r
			return nil
		})
	})
	return out, err
}

// forget deletes builds the controller no longer lists, in the next
// batch: after their last records, and without an fsync of its own under
// the caller's lock.
func (j *journal) forget(ids []string) {
	if len(ids) > 0 {
		j.enqueue(journalEntry{forget: ids})
	}
}

// close writes what is queued, backs the database up and closes it.
func (j *journal) close() error {
	close(j.done)
	<-j.stopped
	if j.db == nil {
		return nil
	}
	j.backups.Wait()
	j.backUp()
	return j.db.Close()
}
