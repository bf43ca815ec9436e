package step

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"distbuild/clock"
)

// fakeClock is a fake clock for tests of the watchdogs, which run in
// virtual time: a test advances it instead of sleeping.
func fakeClock() *clock.Fake { return clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) }

func TestWatchedStopsWorkThatMakesNoProgress(t *testing.T) {
	clk := fakeClock()
	done := make(chan error, 1)
	go func() {
		done <- watched(context.Background(), clk, "waiting", "progress", 100*time.Millisecond, func(ctx context.Context, progress func()) error {
			progress()
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	clk.BlockUntil(1)
	clk.Advance(99 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("watched ended before the limit: %v", err)
	default:
	}
	clk.Advance(time.Millisecond)
	var err error
	select {
	case err = <-done:
	case <-time.After(hangBound):
		t.Fatal("work without progress was not stopped at the limit")
	}
	var stall *stallError
	if !errors.As(err, &stall) || err.Error() != "waiting made no progress for 100ms and was stopped as stalled" {
		t.Errorf("watched: %v; want the stall", err)
	}
}

func TestWatchedLetsProgressingWorkFinish(t *testing.T) {
	// Progress every 10 ms for 0.6 s, twice as long as the limit.
	clk := fakeClock()
	err := watched(context.Background(), clk, "copying", "progress", 300*time.Millisecond, func(ctx context.Context, progress func()) error {
		for range 60 {
			clk.Advance(10 * time.Millisecond)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			progress()
		}
		return nil
	})
	if err != nil {
		t.Errorf("watched: %v; want work that keeps progressing to finish", err)
	}
}

func TestWatchedKeepsErrorsThatAreNotStalls(t *testing.T) {
	clk := fakeClock()
	want := errors.New("refused")
	if err := watched(context.Background(), clk, "x", "progress", time.Minute, func(context.Context, func()) error { return want }); err != want {
		t.Errorf("watched: %v; want %v", err, want)
	}
	// The caller's cancel is not a stall: its cause is reported elsewhere.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("cancelled"))
	err := watched(ctx, clk, "x", "progress", time.Minute, func(ctx context.Context, _ func()) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) || errors.As(err, new(*stallError)) {
		t.Errorf("watched after the caller's cancel: %v; want context.Canceled", err)
	}
}

func TestWatchGrowthSeesGrowthAfterItsFirstMeasurement(t *testing.T) {
	clk := fakeClock()
	var current atomic.Int64
	current.Store(100) // what the mirrors held before
	measured := make(chan struct{})
	grew := make(chan struct{}, 1)
	stop := watchGrowth(clk, 100*time.Millisecond, func() {
		select {
		case grew <- struct{}{}:
		default:
		}
	}, func() int64 {
		defer func() { measured <- struct{}{} }()
		return current.Load()
	})
	defer stop()
	poll := func() {
		t.Helper()
		clk.BlockUntil(1)
		clk.Advance(10 * time.Millisecond) // a tenth of the limit
		select {
		case <-measured:
		case <-time.After(hangBound):
			t.Fatal("watchGrowth did not measure at its poll")
		}
	}
	poll()
	select {
	case <-grew:
		t.Fatal("the first measurement counted as progress; it is only the baseline")
	default:
	}
	current.Store(104) // git writes a pack
	poll()
	select {
	case <-grew:
	case <-time.After(hangBound):
		t.Fatal("growth after the first measurement was never seen as progress")
	}
}

func TestWatchGrowthMeasuresNothingForWorkThatEndsBeforeItsFirstPoll(t *testing.T) {
	clk := fakeClock()
	var walks atomic.Int32
	stop := watchGrowth(clk, time.Minute, func() {}, func() int64 {
		walks.Add(1)
		return 0
	})
	stop()
	if n := walks.Load(); n != 0 {
		t.Errorf("watchGrowth measured %d time(s) for work that ended at once; want none (each measurement walks every mirror)", n)
	}
}

func TestTreeSizeCountsRegularFilesUnderEveryDirectory(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(a, "objects/pack"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "objects/pack/tmp_pack_1"), []byte("PACK"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "README"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("README", filepath.Join(b, "link")); err != nil {
		t.Fatal(err)
	}
	if got := treeSize(a, b, filepath.Join(a, "missing")); got != 9 {
		t.Errorf("treeSize = %d; want 9 (4 + 5 bytes, links and missing directories not counted)", got)
	}
}
