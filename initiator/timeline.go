package initiator

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

const timelineAbout = `Writes a build's Gantt chart to an SVG file: one lane per worker slot, one
bar per attempt at a step, from when the worker started it to when it
finished or failed (by the controller's clock), coloured by outcome
(finished green, failed red, failed and retried orange, running grey), with
the critical path (the chain of steps, each waiting for the one before, that
ended last) outlined in black. Each bar's tooltip names the step, its worker
and its duration. A running build is drawn as it is so far.`

// caughtUp is how long a live build's replayed history may pause before
// the timeline takes it as complete: the replay arrives at once, and new
// events only as the build goes on.
const caughtUp = 500 * time.Millisecond

func runTimeline(env *Env, args []string) int {
	cmd := newControllerCommand(env, "timeline", "[flags] --svg FILE BUILD_ID", timelineAbout, 1)
	out := cmd.fs.String("svg", "", "write the chart to this file (required)")
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		if *out == "" {
			return 0, errors.New("--svg FILE is required")
		}
		id := cmd.fs.Arg(0)
		st, err := client.status(ctx, id)
		if err != nil {
			return 0, err
		}
		events, err := history(ctx, client, id, !buildEnded(st.GetBuild().GetState()))
		if err != nil {
			return 0, err
		}
		slots := map[string]int{}
		if ws, err := unary(ctx, client, client.Workers, &pb.WorkersRequest{}); err == nil {
			for _, w := range ws.GetWorkers() {
				slots[w.Name] = int(w.Slots)
			}
		}
		tl := newTimeline(st.GetBuild(), events, slots, time.Now())
		var buf bytes.Buffer
		if err := tl.writeSVG(&buf); err != nil {
			return 0, err
		}
		path := *out
		if !filepath.IsAbs(path) {
			path = filepath.Join(env.Dir, path)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return 0, err
		}
		fmt.Fprintf(env.Stdout, "%s: %d steps on %d lanes\n", *out, len(tl.bars), len(tl.lanes))
		return ExitOK, nil
	})
}

// history reads a build's stored events. A live build's stream stays open
// for new events, so its history is taken to be complete once the stream
// pauses for caughtUp.
func history(ctx context.Context, client *controllerClient, id string, live bool) ([]*pb.BuildEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	stream, err := client.Attach(ctx, &pb.AttachRequest{BuildId: id})
	if err != nil {
		return nil, err
	}
	type received struct {
		ev  *pb.BuildEvent
		err error
	}
	next := make(chan received)
	go func() {
		for {
			resp, err := stream.Recv()
			select {
			case next <- received{resp.GetEvent(), err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var events []*pb.BuildEvent
	for {
		var pause <-chan time.Time
		if live {
			pause = time.After(caughtUp)
		}
		select {
		case r := <-next:
			switch {
			case r.err == io.EOF:
				return events, nil
			case r.err != nil:
				return nil, r.err
			case r.ev.GetSequence() > 0:
				events = append(events, r.ev)
			}
		case <-pause:
			return events, nil
		}
	}
}

// bar is one attempt at a step on the chart.
type bar struct {
	step, worker string
	start, end   time.Time
	// outcome is "finished", "failed", "retried" or "running".
	outcome  string
	lane     int // index into timeline.lanes
	critical bool
}

// lane is one slot of one worker.
type lane struct {
	worker string
	slot   int
}

// timeline is a build's attempts laid out on worker slots.
type timeline struct {
	buildID    string
	start, end time.Time
	bars       []*bar
	lanes      []lane
}

// newTimeline lays out the attempts the events record. slots gives the
// known workers' slot counts; a worker gets at least as many lanes as it
// had attempts running at once. Attempts still running end at now.
func newTimeline(b *pb.BuildSummary, events []*pb.BuildEvent, slots map[string]int, now time.Time) *timeline {
	tl := &timeline{buildID: b.GetBuildId(), end: now}
	if b.GetCreated() != nil {
		tl.start = b.GetCreated().AsTime()
	}
	if b.GetEnded() != nil {
		tl.end = b.GetEnded().AsTime()
	}
	deps := map[string][]string{}
	running := map[string]*bar{} // by step name
	last := map[string]*bar{}    // each step's last attempt that ended
	for _, ev := range events {
		at := ev.GetTime().AsTime()
		if tl.start.IsZero() || at.Before(tl.start) {
			tl.start = at
		}
		switch e := ev.Event.(type) {
		case *pb.BuildEvent_GraphResolved:
			for _, s := range e.GraphResolved.Steps {
				deps[s.Name] = s.DependsOn
			}
		case *pb.BuildEvent_StepStarted:
			br := &bar{step: e.StepStarted.GetStep().GetStepName(), worker: e.StepStarted.Worker, start: at, outcome: "running"}
			running[br.step] = br
			tl.bars = append(tl.bars, br)
		case *pb.BuildEvent_StepFinished:
			if br := running[e.StepFinished.GetStep().GetStepName()]; br != nil {
				br.end, br.outcome = at, "finished"
				delete(running, br.step)
				last[br.step] = br
			}
		case *pb.BuildEvent_StepFailed:
			if br := running[e.StepFailed.GetStep().GetStepName()]; br != nil {
				br.end, br.outcome = at, "failed"
				if e.StepFailed.WillRetry {
					br.outcome = "retried"
				}
				delete(running, br.step)
				last[br.step] = br
			}
		}
	}
	for _, br := range running {
		br.end = tl.end
	}
	if tl.end.Before(tl.start) {
		tl.end = tl.start
	}
	tl.layOut(slots)
	tl.markCriticalPath(deps, last)
	return tl
}

// layOut puts each worker's bars on the lowest slot free when they start.
func (tl *timeline) layOut(slots map[string]int) {
	byWorker := map[string][]*bar{}
	for _, br := range tl.bars {
		byWorker[br.worker] = append(byWorker[br.worker], br)
	}
	workers := make([]string, 0, len(byWorker))
	for w := range byWorker {
		workers = append(workers, w)
	}
	slices.Sort(workers)
	for _, w := range workers {
		bars := byWorker[w]
		slices.SortStableFunc(bars, func(a, b *bar) int { return a.start.Compare(b.start) })
		var free []time.Time // per slot: when it is free again
		for _, br := range bars {
			i := slices.IndexFunc(free, func(t time.Time) bool { return !t.After(br.start) })
			if i < 0 {
				i = len(free)
				free = append(free, time.Time{})
			}
			free[i] = br.end
			br.lane = len(tl.lanes) + i
		}
		for s := range max(len(free), slots[w]) {
			tl.lanes = append(tl.lanes, lane{worker: w, slot: s})
		}
	}
}

// markCriticalPath marks the chain that ended the build: from the attempt
// that ended last, back through the dependency that ended last before it
// started, and so on.
func (tl *timeline) markCriticalPath(deps map[string][]string, last map[string]*bar) {
	var cur *bar
	for _, br := range last {
		if cur == nil || br.end.After(cur.end) || (br.end.Equal(cur.end) && br.step < cur.step) {
			cur = br
		}
	}
	for cur != nil && !cur.critical {
		cur.critical = true
		var next *bar
		for _, d := range deps[cur.step] {
			if br := last[d]; br != nil && !br.end.After(cur.start) && (next == nil || br.end.After(next.end)) {
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

var outcomeColours = map[string]string{
	"finished": "#43a047",
	"failed":   "#e53935",
	"retried":  "#fb8c00",
	"running":  "#9e9e9e",
}

// writeSVG draws the chart as a standalone SVG document.
func (tl *timeline) writeSVG(w io.Writer) error {
	span := tl.end.Sub(tl.start)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		return labelWidth + float64(t.Sub(tl.start))/float64(span)*chartWidth
	}
	width, height := labelWidth+chartWidth+10, axisHeight+len(tl.lanes)*laneHeight+10
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, "<title>build %s: %s</title>\n", esc(tl.buildID), shortDuration(span))
	// The time axis: about eight ticks at a round interval.
	tick := niceTick(span / 8)
	for t := time.Duration(0); t <= span; t += tick {
		px := labelWidth + float64(t)/float64(span)*chartWidth
		fmt.Fprintf(&b, `<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", px, axisHeight-5, px, height-10)
		fmt.Fprintf(&b, `<text class="tick-label" x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px, axisHeight-10, shortDuration(t))
	}
	for i, l := range tl.lanes {
		y := axisHeight + i*laneHeight
		fill := "#fafafa"
		if i%2 == 1 {
			fill = "#f0f0f0"
		}
		fmt.Fprintf(&b, `<g class="lane" data-worker="%s" data-slot="%d"><rect x="0" y="%d" width="%d" height="%d" fill="%s"/><text x="4" y="%d">%s/%d</text></g>`+"\n",
			esc(l.worker), l.slot, y, width, laneHeight, fill, y+15, esc(l.worker), l.slot)
	}
	for _, br := range tl.bars {
		y := axisHeight + br.lane*laneHeight + 3
		class, stroke := "bar "+br.outcome, `stroke="none"`
		if br.critical {
			class += " critical"
			stroke = `stroke="#000" stroke-width="2"`
		}
		x0, x1 := x(br.start), x(br.end)
		fmt.Fprintf(&b, `<rect class="%s" data-step="%s" data-worker="%s" x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s" %s><title>%s on %s: %s, %s</title></rect>`+"\n",
			class, esc(br.step), esc(br.worker), x0, y, max(x1-x0, 1), laneHeight-6, outcomeColours[br.outcome], stroke,
			esc(br.step), esc(br.worker), br.outcome, shortDuration(br.end.Sub(br.start)))
		if x1-x0 > float64(7*len(br.step)) {
			fmt.Fprintf(&b, `<text class="bar-label" x="%.1f" y="%d" fill="#fff" pointer-events="none">%s</text>`+"\n", x0+3, y+12, esc(br.step))
		}
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
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

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
