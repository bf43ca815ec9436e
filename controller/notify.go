package controller

import (
	"bytes"
	"net/url"
	"strings"

	"distbuild/notify"
	pb "distbuild/proto/distbuild/v1"
)

// What of a failing step's output a notification quotes.
const (
	tailLines = 20
	tailBytes = 4 << 10
)

// logTail keeps the last tailBytes a running attempt printed, so a
// notification can quote its last lines without fetching the log.
type logTail struct{ buf []byte }

func (t *logTail) add(p []byte) {
	if len(p) >= tailBytes {
		t.buf = append(t.buf[:0], p[len(p)-tailBytes:]...)
		return
	}
	if over := len(t.buf) + len(p) - tailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
}

// lines returns the last tailLines complete or partial lines.
func (t *logTail) lines() []string {
	text := strings.TrimRight(string(bytes.ToValidUTF8(t.buf, []byte("?"))), "\n")
	if text == "" {
		return nil
	}
	lines := strings.Split(text, "\n")
	if len(t.buf) == tailBytes && len(lines) > 1 {
		lines = lines[1:] // the first was cut
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return lines
}

// notify records an event for the hooks, webhooks and e-mail that want
// it, plus to for a build's own --notify addresses. The deliveries are
// written with the build events in the journal's next batch; nothing here
// waits. Called with c.mu held.
func (c *Controller) notify(ev *notify.Event, to []string) {
	if c.notifier == nil {
		return
	}
	ev.Time = c.cfg.Clock.Now()
	ds := c.notifier.Route(ev)
	if len(to) > 0 {
		if d, err := c.notifier.MailTo(ev, to); err == nil {
			ds = append(ds, d)
		}
	}
	if len(ds) > 0 {
		c.journal.enqueue(journalEntry{deliveries: ds, notifier: c.notifier})
	}
}

// pageURL is a dashboard page's address, when the controller knows its
// public one.
func (c *Controller) pageURL(path ...string) string {
	if c.cfg.DashboardURL == "" {
		return ""
	}
	for i, p := range path {
		path[i] = url.PathEscape(p)
	}
	return strings.TrimRight(c.cfg.DashboardURL, "/") + "/" + strings.Join(path, "/")
}

// notifyBuild tells of a build event; step, when set, is the step it is
// about. Called with c.mu held.
func (c *Controller) notifyBuild(event string, b *build, reason string, step *notify.Step) {
	if c.notifier == nil {
		return // nobody listens: spare the summary
	}
	sum := b.summary()
	nb := &notify.Build{ID: b.id, Repo: b.req.RepoUrl, Commit: b.req.Commit, System: b.req.MorphologyPath, Components: b.req.Components,
		User: b.user, State: stateLabel(b.state.String(), "BUILD_STATE_"), Reason: reason,
		TotalSteps: int(sum.TotalSteps), FinishedSteps: int(sum.FinishedSteps), FailedSteps: int(sum.FailedSteps), Created: b.created}
	if !b.ended.IsZero() {
		ended := b.ended
		nb.Ended = &ended
	}
	if event == notify.BuildFailed && b.lastFailure != nil {
		nb.FailingStep = failedStep(b.lastFailure, b.lastFailureTail)
	}
	var to []string
	if !b.live() {
		to = b.req.NotifyEmails // a build's own addresses hear how it ended
	}
	ev := &notify.Event{Event: event, Build: nb, Step: step, URL: c.pageURL("builds", b.id)}
	if step != nil {
		ev.URL = c.pageURL("builds", b.id, "steps", step.Name)
	}
	c.notify(ev, to)
}

// failedStep describes a failed attempt and the last lines it printed.
func failedStep(f *pb.StepFailed, tail []string) *notify.Step {
	s := &notify.Step{Name: f.Step.StepName, CacheKey: f.Step.CacheKey, Worker: f.Worker, Reason: f.Reason,
		ExitCode: int(f.ExitCode), Attempt: int(f.Attempt), WillRetry: f.WillRetry, Kind: "setup"}
	if f.Kind == pb.FailureKind_FAILURE_KIND_BUILD {
		s.Kind = "build"
	}
	if f.Log != nil {
		s.Log = f.Log.Hash
	}
	s.LogTail = tail
	return s
}

// notifyWorker tells of a worker joining or being lost. Called with c.mu
// held.
func (c *Controller) notifyWorker(event string, s *session, reason string) {
	if c.notifier == nil {
		return
	}
	w := &notify.Worker{Name: s.name, Arch: s.reg.GetArch(), Slots: int(s.reg.GetSlots()), Tags: s.reg.GetTags(), Reason: reason}
	c.notify(&notify.Event{Event: event, Worker: w, URL: c.pageURL("workers")}, nil)
}
