package clock

import (
	"sync"
	"time"
)

// Fake is a clock that moves only when told to, for tests. Its tickers fire
// during Advance, so a test decides exactly when periodic work happens.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d and fires every ticker that became
// due. Like a real ticker, a tick is dropped when the previous one has not
// been received yet.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.tickers {
		if t.stopped || f.now.Before(t.next) {
			continue
		}
		for !f.now.Before(t.next) {
			t.next = t.next.Add(t.period)
		}
		select {
		case t.c <- f.now:
		default:
		}
	}
}

// NewTicker returns a ticker that fires when Advance passes each multiple of
// d after the current fake time.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTicker{clock: f, period: d, next: f.now.Add(d), c: make(chan time.Time, 1)}
	f.tickers = append(f.tickers, t)
	return t
}

type fakeTicker struct {
	clock   *Fake
	period  time.Duration
	next    time.Time
	stopped bool
	c       chan time.Time
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	t.stopped = true
}
