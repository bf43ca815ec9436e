package provision

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func TestPlannerAsksForWorkersOnceStepsHaveWaitedAndOncePerPeriod(t *testing.T) {
	p := NewPlanner(Config{UpAfter: 30 * time.Second, DownAfter: 10 * time.Minute, MaxWorkers: 5})
	x86 := Platform{Arch: "x86_64"}
	kvm := Platform{Arch: "x86_64", Tags: map[string]string{"kvm": "true", "os": "debian12"}}
	state := State{Now: t0, Waiting: []Demand{{Platform: x86, Steps: 3, Since: t0.Add(-10 * time.Second)}, {Platform: kvm, Steps: 4, Since: t0.Add(-time.Minute)}},
		Workers: []Worker{{Name: "w1", Platform: x86, Slots: 2, Busy: 2}}}
	got := p.Plan(state)
	if len(got) != 1 || got[0].Action != "up" || got[0].Count != 4 || !reflect.DeepEqual(got[0].Args(), []string{"up", "4", "x86_64", "kvm=true,os=debian12"}) {
		t.Fatalf("plan %+v; want up 4 for the kvm steps only (the others waited 10s of 30s)", got)
	}
	state.Now = t0.Add(25 * time.Second)
	got = p.Plan(state)
	if len(got) != 0 {
		t.Fatalf("plan %+v 25s later; want nothing: x86 has 3 steps but max 5 workers leaves room for none after asking for 4, and kvm was asked for", got)
	}
	state.Now = t0.Add(31 * time.Second)
	state.Waiting = state.Waiting[:1]
	got = p.Plan(state)
	if len(got) != 1 || !reflect.DeepEqual(got[0].Args(), []string{"up", "3", "x86_64"}) {
		t.Fatalf("plan %+v; want up 3 x86_64 once the workers asked for at t0 had their time to join", got)
	}
}

func TestPlannerRemovesTheLongestIdleWorkersAboveTheMinimum(t *testing.T) {
	p := NewPlanner(Config{UpAfter: time.Second, DownAfter: time.Minute, MinWorkers: 1})
	x86 := Platform{Arch: "x86_64"}
	state := State{Now: t0, Workers: []Worker{
		{Name: "busy", Platform: x86, Slots: 1, Busy: 1},
		{Name: "idle-2m", Platform: x86, Slots: 1, IdleSince: t0.Add(-2 * time.Minute)},
		{Name: "idle-5m", Platform: x86, Slots: 1, IdleSince: t0.Add(-5 * time.Minute)},
		{Name: "idle-30s", Platform: x86, Slots: 1, IdleSince: t0.Add(-30 * time.Second)},
		{Name: "draining", Platform: x86, Slots: 1, IdleSince: t0.Add(-time.Hour), Draining: true},
	}}
	got := p.Plan(state)
	var names []string
	for _, r := range got {
		if r.Action != "down" {
			t.Errorf("unexpected %+v", r)
		}
		names = append(names, r.Worker)
	}
	if !reflect.DeepEqual(names, []string{"idle-5m", "idle-2m"}) {
		t.Errorf("down %v; want the two idle past a minute, longest first", names)
	}
	p = NewPlanner(Config{UpAfter: time.Second, DownAfter: time.Minute, MinWorkers: 3})
	if got := p.Plan(state); len(got) != 1 || got[0].Worker != "idle-5m" {
		t.Errorf("with at least 3 workers kept: %+v; want only idle-5m removed", got)
	}
}

func TestPlannerRemovesOnlyWorkersWithTheDownTags(t *testing.T) {
	p := NewPlanner(Config{UpAfter: time.Second, DownAfter: time.Minute, DownTags: map[string]string{"provisioned": "virsh"}})
	pooled := Platform{Arch: "x86_64", Tags: map[string]string{"provisioned": "virsh", "os": "debian12"}}
	byHand := Platform{Arch: "x86_64", Tags: map[string]string{"os": "debian12"}}
	got := p.Plan(State{Now: t0, Workers: []Worker{
		{Name: "by-hand", Platform: byHand, Slots: 1, IdleSince: t0.Add(-time.Hour)},
		{Name: "pooled", Platform: pooled, Slots: 1, IdleSince: t0.Add(-2 * time.Minute)},
	}})
	if len(got) != 1 || got[0].Action != "down" || got[0].Worker != "pooled" {
		t.Errorf("plan %+v; want only the pooled worker removed, though the one started by hand was idle longer", got)
	}
}

func TestRunPassesTheRequestAsArgumentsAndTheStateOnStdin(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "scale")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" > "+dir+"/args\ncat > "+dir+"/stdin\n"), 0o755)
	state := State{Now: t0, Waiting: []Demand{{Platform: Platform{Arch: "aarch64"}, Steps: 2, Since: t0}}}
	req := Request{Action: "up", Count: 2, Platform: &Platform{Arch: "aarch64"}}
	if err := Run(context.Background(), Config{Command: []string{script, "--pool", "farm"}}, req, state, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(dir + "/args")
	if strings.TrimSpace(string(args)) != "--pool farm up 2 aarch64" {
		t.Errorf("args %q", args)
	}
	var doc struct {
		Request Request
		State   State
	}
	data, _ := os.ReadFile(dir + "/stdin")
	if err := json.Unmarshal(data, &doc); err != nil || doc.Request.Count != 2 || doc.State.Waiting[0].Steps != 2 {
		t.Errorf("stdin %s: %v", data, err)
	}
	if err := Run(context.Background(), Config{Command: []string{"false"}}, Request{Action: "down", Worker: "w"}, state, hclog.NewNullLogger()); err == nil {
		t.Error("a failing command was not reported")
	}
}
