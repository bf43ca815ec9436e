// Package clock lets time-driven behaviour (the cache's least-recently-used
// eviction, periodic scrubs, access-time flushes and upload idle limits; a
// worker's reports, reconnect backoff and stall watchdogs) be driven by a
// fake clock in tests, so those tests are instant and deterministic
// instead of sleeping.
package clock

import "time"

// Clock is the source of time for everything that depends on it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTicker returns a ticker that fires every d, like time.NewTicker.
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine once d has passed, like
	// time.AfterFunc, unless the timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call of AfterFunc, like time.Timer, behind an
// interface so a fake clock can fire it.
type Timer interface {
	// Stop cancels the call; it reports whether the call was still
	// pending.
	Stop() bool
	// Reset makes the call happen d from now instead (again, if it has
	// happened); it reports whether the call was still pending.
	Reset(d time.Duration) bool
}

// Ticker delivers ticks on a channel, like time.Ticker, behind an interface
// so a fake clock can fire it.
type Ticker interface {
	// C returns the channel on which ticks are delivered.
	C() <-chan time.Time
	// Stop turns the ticker off; no more ticks are delivered.
	Stop()
}

// System is the real clock, for production use.
var System Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTicker(d time.Duration) Ticker { return systemTicker{time.NewTicker(d)} }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

type systemTicker struct{ t *time.Ticker }

func (t systemTicker) C() <-chan time.Time { return t.t.C }

func (t systemTicker) Stop() { t.t.Stop() }
