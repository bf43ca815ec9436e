// Package timeline lays a build's attempts out as a Gantt chart, one lane
// per worker slot and one bar per attempt at a step, and draws it as SVG.
// `initiator timeline --svg` writes the chart to a file; the controller's
// dashboard draws the same chart into a build's page.
package timeline

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

// Bar is one attempt at a step on the chart.
type Bar struct {
	Step, Worker string
	Start, End   time.Time
	// Outcome is "finished", "failed", "retried" or "running".
	Outcome  string
	Lane     int // index into Timeline.Lanes
	Critical bool
}

// Lane is one slot of one worker.
type Lane struct {
	Worker string
	Slot   int
}

// Timeline is a build's attempts laid out on worker slots.
type Timeline struct {
	BuildID    string
	Start, End time.Time
	Bars       []*Bar
	Lanes      []Lane
}

// New lays out the attempts the events record (a build's history; output
// events are ignored). slots gives the known workers' slot counts; a worker
// gets at least as many lanes as it had attempts running at once. Attempts
// still running end at now.
func New(b *pb.BuildSummary, events []*pb.BuildEvent, slots map[string]int, now time.Time) *Timeline {
	tl := &Timeline{BuildID: b.GetBuildId(), End: now}
	if b.GetCreated() != nil {
		tl.Start = b.GetCreated().AsTime()
	}
	if b.GetEnded() != nil {
		tl.End = b.GetEnded().AsTime()
	}
	deps := map[string][]string{}
	running := map[string]*Bar{} // by step name
	last := map[string]*Bar{}    // each step's last attempt that ended
	for _, ev := range events {
		if ev.GetTime() == nil {
			continue
		}
		at := ev.GetTime().AsTime()
		if tl.Start.IsZero() || at.Before(tl.Start) {
			tl.Start = at
		}
		switch e := ev.Event.(type) {
		case *pb.BuildEvent_GraphResolved:
			for _, s := range e.GraphResolved.Steps {
				deps[s.Name] = s.DependsOn
			}
		case *pb.BuildEvent_StepStarted:
			br := &Bar{Step: e.StepStarted.GetStep().GetStepName(), Worker: e.StepStarted.Worker, Start: at, Outcome: "running"}
			running[br.Step] = br
			tl.Bars = append(tl.Bars, br)
		case *pb.BuildEvent_StepFinished:
			if br := running[e.StepFinished.GetStep().GetStepName()]; br != nil {
				br.End, br.Outcome = at, "finished"
				delete(running, br.Step)
				last[br.Step] = br
			}
		case *pb.BuildEvent_StepFailed:
			if br := running[e.StepFailed.GetStep().GetStepName()]; br != nil {
				br.End, br.Outcome = at, "failed"
				if e.StepFailed.WillRetry {
					br.Outcome = "retried"
				}
				delete(running, br.Step)
				last[br.Step] = br
			}
		}
	}
	for _, br := range running {
		br.End = tl.End
	}
	if tl.End.Before(tl.Start) {
		tl.End = tl.Start
	}
	tl.layOut(slots)
	tl.markCriticalPath(deps, last)
	return tl
}

// layOut puts each worker's bars on the lowest slot free when they start.
func (tl *Timeline) layOut(slots map[string]int) {
	byWorker := map[string][]*Bar{}
	for _, br := range tl.Bars {
		byWorker[br.Worker] = append(byWorker[br.Worker], br)
	}
	workers := make([]string, 0, len(byWorker))
	for w := range byWorker {
		workers = append(workers, w)
	}
	slices.Sort(workers)
	for _, w := range workers {
		bars := byWorker[w]
		slices.SortStableFunc(bars, func(a, b *Bar) int { return a.Start.Compare(b.Start) })
		var free []time.Time // per slot: when it is free again
		for _, br := range bars {
			i := slices.IndexFunc(free, func(t time.Time) bool { return !t.After(br.Start) })
			if i < 0 {
				i = len(free)
				free = append(free, time.Time{})
			}
			free[i] = br.End
			br.Lane = len(tl.Lanes) + i
		}
		for s := range max(len(free), slots[w]) {
			tl.Lanes = append(tl.Lanes, Lane{Worker: w, Slot: s})
		}
	}
}

// markCriticalPath marks the chain that ended the build: from the attempt
// that ended last, back through the dependency that ended last before it
// started, and so on.
func (tl *Timeline) markCriticalPath(deps map[string][]string, last map[string]*Bar) {
	var cur *Bar
	for _, br := range last {
		if cur == nil || br.End.After(cur.End) || (br.End.Equal(cur.End) && br.Step < cur.Step) {
			cur = br
		}
	}
	for cur != nil && !cur.Critical {
		cur.Critical = true
		var next *Bar
		for _, d := range deps[cur.Step] {
			if br := last[d]; br != nil && !br.End.After(cur.Start) && (next == nil || br.End.After(next.End)) {
				next = br
			}
		}
		cur = next
	}
}

// Chart geometry, in SVG user units.
const (
	labelWidth = 140
	chartWidth = 900
	laneHeight = 22
	axisHeight = 30
)

// OutcomeColours are the bars' fills by outcome.
var OutcomeColours = map[string]string{
	"finished": "#43a047",
	"failed":   "#e53935",
	"retried":  "#fb8c00",
	"running":  "#9e9e9e",
}

// WriteSVG draws the chart as a standalone SVG document.
func (tl *Timeline) WriteSVG(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	tl.draw(&b, nil)
	_, err := w.Write(b.Bytes())
	return err
}

// InlineSVG draws the chart as an <svg> element for an HTML page; each
// bar links to href(step) when href is not nil.
func (tl *Timeline) InlineSVG(href func(step string) string) []byte {
	var b bytes.Buffer
	tl.draw(&b, href)
	return b.Bytes()
}

func (tl *Timeline) draw(b *bytes.Buffer, href func(string) string) {
	span := tl.End.Sub(tl.Start)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		return labelWidth + float64(t.Sub(tl.Start))/float64(span)*chartWidth
	}
	width, height := labelWidth+chartWidth+10, axisHeight+len(tl.Lanes)*laneHeight+10
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(b, "<title>build %s: %s</title>\n", esc(tl.BuildID), ShortDuration(span))
	// The time axis: about eight ticks at a round interval.
	tick := niceTick(span / 8)
	for t := time.Duration(0); t <= span; t += tick {
		px := labelWidth + float64(t)/float64(span)*chartWidth
		fmt.Fprintf(b, `<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", px, axisHeight-5, px, height-10)
		fmt.Fprintf(b, `<text class="tick-label" x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px, axisHeight-10, ShortDuration(t))
	}
	for i, l := range tl.Lanes {
		y := axisHeight + i*laneHeight
		fill := "#fafafa"
		if i%2 == 1 {
			fill = "#f0f0f0"
		}
		fmt.Fprintf(b, `<g class="lane" data-worker="%s" data-slot="%d"><rect x="0" y="%d" width="%d" height="%d" fill="%s"/><text x="4" y="%d">%s/%d</text></g>`+"\n",
			esc(l.Worker), l.Slot, y, width, laneHeight, fill, y+15, esc(l.Worker), l.Slot)
	}
	for _, br := range tl.Bars {
		y := axisHeight + br.Lane*laneHeight + 3
		class, stroke := "bar "+br.Outcome, `stroke="none"`
		if br.Critical {
			class += " critical"
			stroke = `stroke="#000" stroke-width="2"`
		}
		if href != nil {
			fmt.Fprintf(b, `<a href="%s">`, esc(href(br.Step)))
		}
		x0, x1 := x(br.Start), x(br.End)
		fmt.Fprintf(b, `<rect class="%s" data-step="%s" data-worker="%s" x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s" %s><title>%s on %s: %s, %s</title></rect>`+"\n",
			class, esc(br.Step), esc(br.Worker), x0, y, max(x1-x0, 1), laneHeight-6, OutcomeColours[br.Outcome], stroke,
			esc(br.Step), esc(br.Worker), br.Outcome, ShortDuration(br.End.Sub(br.Start)))
		if x1-x0 > float64(7*len(br.Step)) {
			fmt.Fprintf(b, `<text class="bar-label" x="%.1f" y="%d" fill="#fff" pointer-events="none">%s</text>`+"\n", x0+3, y+12, esc(br.Step))
		}
		if href != nil {
			b.WriteString("</a>")
		}
	}
	b.WriteString("</svg>\n")
}

// niceTick rounds d up to an interval an axis can be read by.
func niceTick(d time.Duration) time.Duration {
	for _, t := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
		5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
		10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour} {
		if d <= t {
			return t
		}
	}
	return d.Round(time.Hour)
}

// ShortDuration is a duration to a tenth of a second below a minute, and
// to the second above.
func ShortDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
