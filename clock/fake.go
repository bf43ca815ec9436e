package clock

import (
	"sync"
	"time"
)

// Fake is a clock that moves only when told to, for tests. Its tickers and
// timers fire during Advance, so a test decides exactly when periodic and
// delayed work happens; an AfterFunc's call has been made when Advance
// returns.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
	timers  []*fakeTimer
	// armed is signalled whenever a ticker or timer is made or reset, for
	// BlockUntil.
	armed *sync.Cond
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake {
	f := &Fake{now: start}
	f.armed = sync.NewCond(&f.mu)
	return f
}

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
	f.now = f.now.Add(d)
	var due []func()
	for _, t := range f.timers {
		if t.pending && !f.now.Before(t.when) {
			t.pending = false
			due = append(due, t.f)
		}
	}
	defer func() {
		for _, call := range due {
			call()
		}
	}()
	defer f.mu.Unlock()
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
	f.armed.Broadcast()
	return t
}

// AfterFunc returns a timer that calls f during the Advance that takes the
// clock d past the current fake time.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, when: f.now.Add(d), pending: true, f: fn}
	f.timers = append(f.timers, t)
	f.armed.Broadcast()
	return t
}

// BlockUntil waits until at least n tickers and timers are live (made and
// not stopped; a timer also not yet fired), so that a test advances the
// clock only once the code it drives has armed what the advance is meant
// to fire.
func (f *Fake) BlockUntil(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.liveLocked() < n {
		f.armed.Wait()
	}
}

func (f *Fake) liveLocked() int {
	n := 0
	for _, t := range f.tickers {
		if !t.stopped {
			n++
		}
	}
	for _, t := range f.timers {
		if t.pending {
			n++
		}
	}
	return n
}

type fakeTimer struct {
	clock   *Fake
	when    time.Time
	pending bool
	f       func()
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.pending
	t.pending = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.pending
	t.when, t.pending = t.clock.now.Add(d), true
	t.clock.armed.Broadcast()
	return was
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
