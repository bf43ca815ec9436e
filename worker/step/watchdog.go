package step

import (
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"distbuild/clock"
)

// watched runs op with a context that is cancelled when op goes limit
// without calling progress, and then returns a *stallError naming what. A
// limit of zero or less never stops op. Stall detection measures progress
// rather than total time, so a large but healthy transfer is never cut
// short while a hung one is caught quickly.
func watched(ctx context.Context, clk clock.Clock, what, lacking string, limit time.Duration, op func(ctx context.Context, progress func()) error) error {
	if limit <= 0 {
		return op(ctx, func() {})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := &stallError{what: what, lacking: lacking, limit: limit}
	timer := clk.AfterFunc(limit, func() { cancel(stall) })
	defer timer.Stop()
	err := op(ctx, func() { timer.Reset(limit) })
	if err != nil && context.Cause(ctx) == error(stall) {
		return stall
	}
	return err
}

// progressReader reports progress whenever data is read through it.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}

// maxGrowthPoll bounds how often watchGrowth walks its directories for a
// long stall limit: often enough to notice progress several times per
// limit, rarely enough that walking a large mirror cache costs nothing.
const maxGrowthPoll = 10 * time.Second

// watchGrowth reports progress whenever size (the total size of what the
// watched work writes) changes, checking a tenth of limit apart (at most
// maxGrowthPoll), until the returned stop is called. It is how progress is
// seen in work done by other processes that write as they receive, such as
// git writing a pack into a mirror.
//
// The first measurement is taken at the first check, not at the start:
// most work watched this way (a checkout from a mirror that already holds
// the commit) ends within milliseconds, and measuring a worker's every
// mirror up front cost each step a walk of them all. Growth before the
// first check goes unseen; growth after it is seen at the second, well
// within limit.
func watchGrowth(clk clock.Clock, limit time.Duration, progress func(), size func() int64) (stop func()) {
	interval := min(limit/10, maxGrowthPoll)
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	ticker := clk.NewTicker(interval)
	wg.Go(func() {
		defer ticker.Stop()
		var last int64
		for measured := false; ; measured = true {
			select {
			case <-done:
				return
			case <-ticker.C():
			}
			if now := size(); now != last {
				if measured {
					progress()
				}
				last = now
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// treeSize is the total size of the regular files under dirs. Files that
// vanish during the walk (git renames its temporary files) are skipped.
func treeSize(dirs ...string) int64 {
	var total int64
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
			return nil
		})
	}
	return total
}
