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
