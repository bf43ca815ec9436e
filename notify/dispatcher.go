package notify

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"distbuild/clock"
	"distbuild/internal/observability"
)

// Bucket is the bbolt bucket of pending deliveries: big-endian delivery
// id -> JSON Delivery.
const Bucket = "notifications"

// Defaults for Config.
const (
	DefaultConcurrency = 4
	DefaultRetryFor    = time.Hour
	defaultFirstRetry  = time.Second
	// maxRetryDelay caps the backoff, so a receiver that comes back is
	// heard from within minutes.
	maxRetryDelay = 5 * time.Minute
)

// Target is somewhere events go: a hook command, a webhook, a mail server.
type Target interface {
	// Name identifies the target across restarts: a pending delivery
	// names its target, and is dropped (with a log line) when the
	// restarted controller no longer has one of that name.
	Name() string
	// Kind is "hook", "webhook" or "mail", for metrics and logs.
	Kind() string
	// Wants reports whether the target takes events of this kind.
	Wants(event string) bool
	// Deliver sends one delivery. An error marked Permanent is not retried.
	Deliver(ctx context.Context, d *Delivery) error
}

// Delivery is one event on its way to one target.
type Delivery struct {
	// ID orders deliveries and keys them in Bucket.
	ID     uint64 `json:"id"`
	Target string `json:"target"`
	// To overrides a mail target's farm-wide addresses: one build's
	// `initiator build --notify`.
	To    []string `json:"to,omitempty"`
	Event *Event   `json:"event"`

	// attempts counts failed attempts in this process.
	attempts int
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent marks err as one no retry can fix (a receiver that refuses the
// request itself), so the delivery is given up on at once.
func Permanent(err error) error { return permanent{err} }

// Config sets up a Dispatcher.
type Config struct {
	// DB keeps pending deliveries across restarts; nil keeps them in
	// memory only.
	DB      *bolt.DB
	Targets []Target
	// Concurrency bounds the deliveries running at once (default 4).
	Concurrency int
	// RetryFor is how long after its event a failing delivery is retried
	// before it is given up on (default 1h).
	RetryFor time.Duration
	// FirstRetry is the first backoff, doubled each attempt up to five
	// minutes (default 1s).
	FirstRetry time.Duration
	// Clock times retries; nil is the system clock.
	Clock   clock.Clock
	Metrics prometheus.Registerer
	Logger  hclog.Logger
}

// Dispatcher delivers events to targets; see the package comment.
type Dispatcher struct {
	cfg     Config
	targets map[string]Target
	order   []Target
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	wake    chan struct{}

	outcomes *prometheus.CounterVec
	pending  prometheus.Gauge

	mu     sync.Mutex
	nextID uint64
	ready  []*Delivery
	timers map[*Delivery]clock.Timer
	closed bool
}

// Open starts a dispatcher. With a database, the deliveries pending there
// (from before a restart) are handed out again at once.
func Open(cfg Config) (*Dispatcher, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.FirstRetry <= 0 {
		cfg.FirstRetry = defaultFirstRetry
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	reg := observability.Registerer(cfg.Metrics)
	d := &Dispatcher{cfg: cfg, targets: map[string]Target{}, wake: make(chan struct{}, 1), timers: map[*Delivery]clock.Timer{}, nextID: 1,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "distbuild_notifications_total",
			Help: "Attempts to deliver farm events to hooks, webhooks and e-mail, by target kind and outcome (delivered, failed: will retry, gave_up, dropped: target no longer configured)."},
			[]string{"kind", "outcome"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "distbuild_notifications_pending",
			Help: "Deliveries of farm events not yet delivered or given up on."}),
	}
	for _, c := range []prometheus.Collector{d.outcomes, d.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, t := range cfg.Targets {
		if d.targets[t.Name()] != nil {
			return nil, fmt.Errorf("two notification targets are both %q", t.Name())
		}
		d.targets[t.Name()] = t
		d.order = append(d.order, t)
	}
	var restored []*Delivery
	if cfg.DB != nil {
		var dropped int
		var err error
		if restored, dropped, err = load(cfg.DB); err != nil {
			return nil, err
		}
		if dropped > 0 {
			cfg.Logger.Error("dropped pending notifications the state database holds damaged", "dropped", dropped)
			d.outcomes.WithLabelValues("unknown", "dropped").Add(float64(dropped))
		}
		if n := len(restored); n > 0 {
			d.nextID = restored[n-1].ID + 1
			cfg.Logger.Info("resuming notifications pending before the restart", "pending", n)
		}
	}
	d.ctx, d.stop = context.WithCancel(context.Background())
	for range cfg.Concurrency {
		d.wg.Add(1)
		go d.run()
	}
	d.Submit(restored)
	return d, nil
}

// load reads the pending deliveries, oldest first. One that does not
// decode can never be delivered: it is deleted and counted in dropped.
func load(db *bolt.DB) (out []*Delivery, dropped int, err error) {
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(Bucket))
		if err != nil {
			return err
		}
		var bad [][]byte
		err = b.ForEach(func(k, v []byte) error {
			dl := &Delivery{}
			if len(k) != 8 || json.Unmarshal(v, dl) != nil || dl.Event == nil {
				bad = append(bad, k)
				return nil
			}
			dl.ID = binary.BigEndian.Uint64(k)
			out = append(out, dl)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range bad {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		dropped = len(bad)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reading pending notifications: %w", err)
	}
	return out, dropped, nil
}

// Route makes ev's deliveries to every target that wants it, giving ev an
// ID when it has none. It does no I/O: the controller calls it at the
// event, then persists and submits the result.
func (d *Dispatcher) Route(ev *Event) []*Delivery {
	var out []*Delivery
	for _, t := range d.order {
		if t.Wants(ev.Event) {
			out = append(out, d.newDelivery(t.Name(), nil, ev))
		}
	}
	return out
}

// MailTo makes a delivery of ev by e-mail to the given addresses (one
// build's --notify), or returns an error when no mail target is set up.
func (d *Dispatcher) MailTo(ev *Event, to []string) (*Delivery, error) {
	if d.targets[mailTarget] == nil {
		return nil, errors.New("this controller sends no e-mail (it has no --smtp-server)")
	}
	return d.newDelivery(mailTarget, to, ev), nil
}

// CanMail reports whether a mail target is set up.
func (d *Dispatcher) CanMail() bool { return d != nil && d.targets[mailTarget] != nil }

func (d *Dispatcher) newDelivery(target string, to []string, ev *Event) *Delivery {
	if ev.ID == "" {
		var b [8]byte
		rand.Read(b[:])
		ev.ID = hex.EncodeToString(b[:])
	}
	d.mu.Lock()
	id := d.nextID
	d.nextID++
	d.mu.Unlock()
	return &Delivery{ID: id, Target: target, To: to, Event: ev}
}

// Persist writes deliveries into tx, so they are pending exactly when the
// transaction that records their events commits.
func Persist(tx *bolt.Tx, ds []*Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists([]byte(Bucket))
	if err != nil {
		return err
	}
	for _, dl := range ds {
		data, err := json.Marshal(dl)
		if err != nil {
			return err
		}
		if err := b.Put(deliveryKey(dl.ID), data); err != nil {
			return err
		}
	}
	return nil
}

func deliveryKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// Submit hands durable deliveries to the senders. It never blocks.
func (d *Dispatcher) Submit(ds []*Delivery) {
	if len(ds) == 0 {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.ready = append(d.ready, ds...)
	d.mu.Unlock()
	d.pending.Add(float64(len(ds)))
	d.signal()
}

func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run delivers until Close.
func (d *Dispatcher) run() {
	defer d.wg.Done()
	for {
		dl := d.take()
		if dl == nil {
			return
		}
		d.attempt(dl)
	}
}

// take waits for the next ready delivery; nil once closed.
func (d *Dispatcher) take() *Delivery {
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil
		}
		if len(d.ready) > 0 {
			dl := d.ready[0]
			d.ready = d.ready[1:]
			more := len(d.ready) > 0
			d.mu.Unlock()
			if more {
				d.signal() // another sender may take the next one
			}
			return dl
		}
		d.mu.Unlock()
		select {
		case <-d.wake:
		case <-d.ctx.Done():
			return nil
		}
	}
}

func (d *Dispatcher) attempt(dl *Delivery) {
	log := d.cfg.Logger.With("event", dl.Event.Event, "event_id", dl.Event.ID, "target", dl.Target)
	t := d.targets[dl.Target]
	if t == nil {
		log.Warn("dropped a pending notification: its target is no longer configured")
		d.finish(dl, "unknown", "dropped")
		return
	}
	err := t.Deliver(d.ctx, dl)
	if err == nil {
		log.Debug("notification delivered")
		d.finish(dl, t.Kind(), "delivered")
		return
	}
	if d.ctx.Err() != nil {
		return // shutting down: it stays pending for the next start
	}
	dl.attempts++
	delay := min(d.cfg.FirstRetry<<min(dl.attempts-1, 20), maxRetryDelay)
	giveUpAt := dl.Event.Time.Add(d.cfg.RetryFor)
	if errors.As(err, new(permanent)) || d.cfg.Clock.Now().Add(delay).After(giveUpAt) {
		log.Error("gave up on a notification", "attempts", dl.attempts, "error", err)
		d.finish(dl, t.Kind(), "gave_up")
		return
	}
	log.Warn("notification failed; will retry", "attempt", dl.attempts, "retry_in", delay, "error", err)
	d.outcomes.WithLabelValues(t.Kind(), "failed").Inc()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.timers[dl] = d.cfg.Clock.AfterFunc(delay, func() {
		d.mu.Lock()
		delete(d.timers, dl)
		if !d.closed {
			d.ready = append(d.ready, dl)
		}
		d.mu.Unlock()
		d.signal()
	})
}

// finish forgets a delivery that was delivered or given up on.
func (d *Dispatcher) finish(dl *Delivery, kind, outcome string) {
	defer d.outcomes.WithLabelValues(kind, outcome).Inc()
	d.pending.Dec()
	if d.cfg.DB == nil {
		return
	}
	err := d.cfg.DB.Batch(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(Bucket)); b != nil {
			return b.Delete(deliveryKey(dl.ID))
		}
		return nil
	})
	if err != nil {
		// It will be delivered again after a restart: at least once.
		d.cfg.Logger.Warn("cannot forget a finished notification", "target", dl.Target, "error", err)
	}
}

// Close stops delivering: running deliveries are cancelled (a hook's
// process is killed) and, like those waiting, stay pending in the
// database for the next start. Call it before closing the database.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed = true
	for _, t := range d.timers {
		t.Stop()
	}
	d.timers = nil
	d.mu.Unlock()
	d.stop()
	d.wg.Wait()
}
