package clock

import (
	"testing"
	"time"
)

func TestFakeTickerFiresOnlyWhenAdvancedPastItsPeriod(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	tk := f.NewTicker(time.Minute)
	f.Advance(59 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("ticker fired before its period")
	default:
	}
	f.Advance(time.Second)
	select {
	case got := <-tk.C():
		if want := start.Add(time.Minute); !got.Equal(want) {
			t.Errorf("tick at %v, want %v", got, want)
		}
	default:
		t.Fatal("ticker did not fire after its period")
	}
	tk.Stop()
	f.Advance(time.Hour)
	select {
	case <-tk.C():
		t.Fatal("stopped ticker fired")
	default:
	}
	if got := f.Now(); !got.Equal(start.Add(time.Hour + time.Minute)) {
		t.Errorf("Now() = %v after advancing 61 minutes", got)
	}
}

func TestFakeAfterFuncCallsOnlyWhenDueAndNotAfterStop(t *testing.T) {
	f := NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	calls := 0
	tm := f.AfterFunc(time.Minute, func() { calls++ })
	f.BlockUntil(1)
	f.Advance(59 * time.Second)
	if calls != 0 {
		t.Fatal("timer fired before it was due")
	}
	if !tm.Reset(time.Minute) {
		t.Error("Reset of a pending timer said it was not pending")
	}
	f.Advance(59 * time.Second)
	if calls != 0 {
		t.Fatal("a reset timer fired at its old time")
	}
	f.Advance(time.Second)
	if calls != 1 {
		t.Fatalf("timer called %d times once due; want once", calls)
	}
	f.Advance(time.Hour)
	if calls != 1 {
		t.Fatalf("timer called %d times; want it to fire only once", calls)
	}
	tm.Reset(time.Second)
	if tm.Stop() != true {
		t.Error("Stop of a pending timer said it was not pending")
	}
	f.Advance(time.Hour)
	if calls != 1 {
		t.Error("a stopped timer fired")
	}
}
