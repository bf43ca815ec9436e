package step

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchedStopsWorkThatMakesNoProgress(t *testing.T) {
	err := watched(context.Background(), "waiting", "progress", 100*time.Millisecond, func(ctx context.Context, progress func()) error {
		progress()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(hangBound):
			return errors.New("never stopped")
		}
	})
	var stall *stallError
	if !errors.As(err, &stall) || err.Error() != "waiting made no progress for 100ms and was stopped as stalled" {
		t.Errorf("watched: %v; want the stall", err)
	}
}

func TestWatchedLetsProgressingWorkFinish(t *testing.T) {
	// Progress every 10 ms for 0.6 s, twice as long as the limit.
	err := watched(context.Background(), "copying", "progress", 300*time.Millisecond, func(ctx context.Context, progress func()) error {
		for range 60 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
				progress()
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("watched: %v; want work that keeps progressing to finish", err)
	}
}

func TestWatchedKeepsErrorsThatAreNotStalls(t *testing.T) {
	want := errors.New("refused")
	if err := watched(context.Background(), "x", "progress", time.Minute, func(context.Context, func()) error { return want }); err != want {
		t.Errorf("watched: %v; want %v", err, want)
	}
	// The caller's cancel is not a stall: its cause is reported elsewhere.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("cancelled"))
	err := watched(ctx, "x", "progress", time.Minute, func(ctx context.Context, _ func()) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) || errors.As(err, new(*stallError)) {
		t.Errorf("watched after the caller's cancel: %v; want context.Canceled", err)
	}
}

func TestWatchGrowthSeesFilesGrow(t *testing.T) {
	dir := t.TempDir()
	grew := make(chan struct{}, 1)
	stop := watchGrowth(100*time.Millisecond, func() {
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
	select {
	case <-grew:
	case <-time.After(hangBound):
		t.Fatal("a file appearing under the watched directory was never seen as progress")
	}
}
