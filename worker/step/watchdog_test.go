package step

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

func TestWatchGrowthSeesFilesGrow(t *testing.T) {
	clk := fakeClock()
	dir := t.TempDir()
	grew := make(chan struct{}, 1)
	stop := watchGrowth(clk, 100*time.Millisecond, func() {
		select {
		case grew <- struct{}{}:
		default:
		}
	}, dir, filepath.Join(dir, "missing"))
	defer stop()
	if err := os.MkdirAll(filepath.Join(dir, "objects/pack"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "objects/pack/tmp_pack_1"), []byte("PACK"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Millisecond) // the poll: a tenth of the limit
	select {
	case <-grew:
	case <-time.After(hangBound):
		t.Fatal("a file appearing under the watched directory was never seen as progress")
	}
}
