package daemon

import (
	"context"
	"time"

	"distbuild/artifactcache/clock"
	"distbuild/artifactcache/store"

	"github.com/hashicorp/go-hclog"
)

// scrubber re-hashes the whole store every interval, so bit rot in blobs
// nobody reads is found (and the artifacts using them rebuilt) before a
// build needs them.
type scrubber struct {
	store    *store.Store
	clock    clock.Clock
	interval time.Duration
	log      hclog.Logger
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
			report, err := s.store.Scrub(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("scrub failed", "error", err, "checked", report.Checked)
			}
		}
	}
}
