// Package provision grows and shrinks a farm on demand, as Antmicro's
// Distant starts worker VMs when builds need them. The controller describes
// its state (steps waiting with no free slot that could take them, and
// each worker's load) to a Planner, which decides when to ask an
// operator's command for more workers of a kind and which idle workers to
// let go; Run calls that command. The command does the machine-specific
// part (virsh, a cloud API, plain processes); distbuild only says what it
// needs.
package provision

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config says when and how to call the scale command.
type Config struct {
	// Command is run as `COMMAND up N ARCH [KEY=VALUE,...]` or
	// `COMMAND down WORKER`, with the State as JSON on stdin.
	Command []string
	// UpAfter is how long a step must have waited with no free slot that
	// could take it before more workers of its kind are asked for, and
	// how long before they are asked for again.
	UpAfter time.Duration
	// DownAfter is how long a worker must have been idle before it is
	// drained and the command told to remove it.
	DownAfter time.Duration
	// MinWorkers are never scaled down below; MaxWorkers (0: no limit)
	// are never scaled up beyond.
	MinWorkers, MaxWorkers int
	// DownTags, when set, limit scaling down to workers registered with
	// every one of these tags (e.g. provisioned=virsh, as the pool's
	// workers are configured), so that machines started by hand are
	// never drained and removed.
	DownTags map[string]string
	// Timeout bounds one run of the command.
	Timeout time.Duration
}

// Platform is a kind of worker: its architecture and the tags the
// waiting steps require.
type Platform struct {
	Arch string            `json:"arch"`
	Tags map[string]string `json:"tags,omitempty"`
}

// Key names a platform: ARCH, or ARCH/KEY=VALUE,... with the tags sorted
// (the command gets the tags in that form).
func (p Platform) Key() string {
	if len(p.Tags) == 0 {
		return p.Arch
	}
	var tags []string
	for _, k := range slices.Sorted(maps.Keys(p.Tags)) {
		tags = append(tags, k+"="+p.Tags[k])
	}
	return p.Arch + "/" + strings.Join(tags, ",")
}

// Demand is the steps of one platform that are ready but that no free
// slot can take.
type Demand struct {
	Platform
	Steps int `json:"steps"`
	// Since is when the longest-waiting of them became ready.
	Since time.Time `json:"since"`
}

// Worker is one connected worker's load.
type Worker struct {
	Name string `json:"name"`
	Platform
	Slots int `json:"slots"`
	Busy  int `json:"busy"`
	// IdleSince is when its last job ended (or it joined); zero while
	// it runs any.
	IdleSince time.Time `json:"idle_since,omitzero"`
	Draining  bool      `json:"draining,omitempty"`
}

// State is the farm as the controller sees it, sent to the command.
type State struct {
	Now     time.Time `json:"now"`
	Waiting []Demand  `json:"waiting"`
	Workers []Worker  `json:"workers"`
}

// Request is one call of the command.
type Request struct {
	// Action is "up" or "down".
	Action string `json:"action"`
	// For up: how many more workers, of which platform (one slot per
	// waiting step; the command may start fewer, larger machines).
	Count    int       `json:"count,omitempty"`
	Platform *Platform `json:"platform,omitempty"`
	// For down: the worker, already drained, to remove.
	Worker string `json:"worker,omitempty"`
}

// Args are the command-line arguments the request adds to the command.
func (r Request) Args() []string {
	if r.Action == "down" {
		return []string{"down", r.Worker}
	}
	args := []string{"up", strconv.Itoa(r.Count), r.Platform.Arch}
	if k := r.Platform.Key(); k != r.Platform.Arch {
		args = append(args, strings.TrimPrefix(k, r.Platform.Arch+"/"))
	}
	return args
}

// Planner decides what to ask the command for. It remembers what it asked
// for in the last UpAfter: workers being started are given that long to
// join before more of their platform are asked for, and count towards
// MaxWorkers meanwhile.
type Planner struct {
	cfg    Config
	lastUp map[string]time.Time
	asked  []asked
}

type asked struct {
	at    time.Time
	count int
}

// NewPlanner makes a planner.
func NewPlanner(cfg Config) *Planner { return &Planner{cfg: cfg, lastUp: map[string]time.Time{}} }

// Plan returns the requests state calls for: up for each platform whose
// steps have waited UpAfter (once per UpAfter), within MaxWorkers counting
// those asked for in the last UpAfter; down
// for the workers idle DownAfter (and carrying DownTags), longest idle
// first, above MinWorkers. Workers already draining count for neither.
func (p *Planner) Plan(s State) []Request {
	active := 0
	for _, w := range s.Workers {
		if !w.Draining {
			active++
		}
	}
	var out []Request
	p.asked = slices.DeleteFunc(p.asked, func(a asked) bool { return s.Now.Sub(a.at) >= p.cfg.UpAfter })
	room := -1 // unlimited
	if p.cfg.MaxWorkers > 0 {
		room = p.cfg.MaxWorkers - active
		for _, a := range p.asked {
			room -= a.count
		}
		room = max(room, 0)
	}
	for _, d := range s.Waiting {
		k := d.Key()
		if d.Steps == 0 || s.Now.Sub(d.Since) < p.cfg.UpAfter || s.Now.Sub(p.lastUp[k]) < p.cfg.UpAfter {
			continue
		}
		n := d.Steps
		if room >= 0 {
			n = min(n, room)
			room -= n
		}
		if n == 0 {
			continue
		}
		p.lastUp[k] = s.Now
		p.asked = append(p.asked, asked{at: s.Now, count: n})
		platform := d.Platform
		out = append(out, Request{Action: "up", Count: n, Platform: &platform})
	}
	var idle []Worker
	for _, w := range s.Workers {
		if !w.Draining && w.Busy == 0 && !w.IdleSince.IsZero() && s.Now.Sub(w.IdleSince) >= p.cfg.DownAfter && hasTags(w, p.cfg.DownTags) {
			idle = append(idle, w)
		}
	}
	slices.SortFunc(idle, func(a, b Worker) int {
		return cmp.Or(a.IdleSince.Compare(b.IdleSince), strings.Compare(a.Name, b.Name))
	})
	for _, w := range idle[:min(len(idle), max(active-p.cfg.MinWorkers, 0))] {
		out = append(out, Request{Action: "down", Worker: w.Name})
	}
	return out
}

// hasTags reports whether w was registered with every one of tags.
func hasTags(w Worker, tags map[string]string) bool {
	for k, v := range tags {
		if w.Tags[k] != v {
			return false
		}
	}
	return true
}
