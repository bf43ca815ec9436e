package trove

import (
	"context"
	"time"

	"distbuild/artifactcache/store"
	"distbuild/clock"

	"github.com/hashicorp/go-hclog"
)

// scrubber re-hashes the whole store every interval, so bit rot in blobs
// nobody reads is found (and the artifacts using them rebuilt) before a
// build needs them, and on demand (CacheAdminService.ScrubNow).
type scrubber struct {
	store    *store.Store
	clock    clock.Clock
	interval time.Duration
	log      hclog.Logger
	// turn lets one scrub run at a time: two would only read every blob
	// twice as slowly. A channel rather than a mutex, so that waiting for
	// a turn can be cancelled.
	turn chan struct{}
	// metrics, when set, count scrubs and what they found.
	metrics *metrics
}

func newScrubber(st *store.Store, clk clock.Clock, interval time.Duration, log hclog.Logger) *scrubber {
	return &scrubber{store: st, clock: clk, interval: interval, log: log, turn: make(chan struct{}, 1)}
}

// run scrubs on every tick until ctx ends; an interval of 0 does nothing.
func (s *scrubber) run(ctx context.Context) {
	if s.interval <= 0 {
		return
	}
	t := s.clock.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			report, err := s.scrub(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("scrub failed", "error", err, "checked", report.Checked)
			}
		}
	}
}

// scrub runs one whole scrub once no other is running, stopping early
// when ctx ends.
func (s *scrubber) scrub(ctx context.Context) (store.ScrubReport, error) {
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return store.ScrubReport{}, ctx.Err()
	}
	defer func() { <-s.turn }()
	report, err := s.store.Scrub(ctx)
	if s.metrics != nil {
		s.metrics.scrubbedStore(report, err)
	}
	return report, err
}
