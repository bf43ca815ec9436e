package controller

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/digest"
	"distbuild/internal/checkreport"
	"distbuild/internal/timeline"
	pb "distbuild/proto/distbuild/v1"
)

//go:embed web
var webFiles embed.FS

// LogReader reads a blob from the artifact cache: the dashboard shows an
// ended step's complete log from there. The trove's *artifactcache.Client
// is one.
type LogReader interface {
	Fetch(ctx context.Context, d digest.Digest, w io.Writer) error
}

// DashboardOptions are what the dashboard needs beyond the controller.
type DashboardOptions struct {
	// Logs reads ended steps' logs from the cache; nil shows only the
	// output relayed while a step runs.
	Logs LogReader
	// TroveMetrics is the URL of the trove's /metrics, read by the cache
	// page for the store's size and evictions; empty leaves them out.
	TroveMetrics string
	// Client fetches TroveMetrics; nil is a client with a short timeout.
	Client *http.Client
}

// maxInlineLog bounds the log a step's page shows inline; the whole log
// is a link away.
const maxInlineLog = 1 << 20

// DashboardHandler serves the read-only web dashboard: server-rendered
// HTML pages that a little JavaScript keeps live through the build's
// server-sent events (/api/builds/{id}/events, served by APIHandler).
// Every page reads state the way the gRPC API does (copied under the
// controller's lock, rendered after it is released), so the dashboard
// adds no second source of truth and no cost to dispatch.
//
//	GET /                               builds
//	GET /builds/{id}                    a build: steps, strata, Gantt chart
//	GET /builds/{id}/gantt.svg          its Gantt chart alone
//	GET /builds/{id}/steps/{step}       a step: its log, phases, CPU and memory
//	GET /builds/{id}/steps/{step}/log   the step's complete log, as text
//	GET /builds/{id}/steps/{step}/profile.svg   its performance graphs alone
//	GET /workers                        connected workers
//	GET /cache                          the cache: size, hit rate, evictions
func (c *Controller) DashboardHandler(opts DashboardOptions) http.Handler {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 3 * time.Second}
	}
	d := &dashboard{c: c, opts: opts, pages: parsePages()}
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFiles, "web/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", d.builds)
	mux.HandleFunc("GET /builds/{id}", d.build)
	mux.HandleFunc("GET /builds/{id}/gantt.svg", d.gantt)
	mux.HandleFunc("GET /builds/{id}/steps/{step}", d.step)
	mux.HandleFunc("GET /builds/{id}/steps/{step}/log", d.stepLog)
	mux.HandleFunc("GET /builds/{id}/steps/{step}/profile.svg", d.profile)
	mux.HandleFunc("GET /workers", d.workers)
	mux.HandleFunc("GET /cache", d.cache)
	return mux
}

type dashboard struct {
	c     *Controller
	opts  DashboardOptions
	pages map[string]*template.Template
	trove troveReadings
}

var pageFuncs = template.FuncMap{
	"state":   stateName,
	"dur":     durationText,
	"time":    timeText,
	"bytes":   bytesText,
	"path":    url.PathEscape,
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"kind":    func(k pb.StepKind) string { return stateLabel(k.String(), "STEP_KIND_") },
	// check says what a step's latest reproducibility check found.
	"check":           checkreport.Word,
	"checkSummary":    checkreport.Summary,
	"checkDifference": checkreport.Difference,
	"stepURL": func(build, step string) string {
		return "/builds/" + url.PathEscape(build) + "/steps/" + url.PathEscape(step)
	},
	"buildURL": func(build string) string { return "/builds/" + url.PathEscape(build) },
}

// parsePages pairs each page with the shared layout.
func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"builds", "build", "step", "workers", "cache"} {
		pages[name] = template.Must(template.New("layout.html").Funcs(pageFuncs).ParseFS(webFiles, "web/layout.html", "web/"+name+".html"))
	}
	return pages
}

// render executes a page into a buffer first, so a failure is an error
// page rather than half a page.
func (d *dashboard) render(w http.ResponseWriter, page string, data any) {
	var b bytes.Buffer
	if err := d.pages[page].Execute(&b, data); err != nil {
		d.c.log.Error("dashboard page failed", "page", page, "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

func (d *dashboard) builds(w http.ResponseWriter, r *http.Request) {
	resp, _ := (&buildService{c: d.c}).List(r.Context(), &pb.ListRequest{IncludeEnded: true})
	d.render(w, "builds", map[string]any{"Title": "Builds", "Builds": resp.Builds})
}

// buildView is one build as its pages show it, copied out of the
// controller.
type buildView struct {
	Summary *pb.BuildSummary
	Steps   []*pb.StepStatus
	// Events are the build's durable history (no output).
	Events []*pb.BuildEvent
	// Slots are the connected workers' slot counts.
	Slots map[string]int
	// Published is the sequence of the last event whose effect Steps
	// show: a page that follows the build asks for the events after it.
	Published int
}

// viewBuild copies what the build's pages need: the steps under the
// controller's lock, the history under the event log's own.
func (c *Controller) viewBuild(id string) (*buildView, error) {
	b, err := c.lookup(id)
	if err != nil {
		return nil, err
	}
	v := &buildView{Slots: map[string]int{}}
	c.mu.Lock()
	v.Summary = b.summary()
	v.Steps = c.stepStatuses(b)
	for _, w := range c.sched.Workers() {
		v.Slots[w.Name] = w.Slots
	}
	// Events are published with c.mu held, so none is missing from Steps.
	v.Published = b.log.published()
	c.mu.Unlock()
	v.Events = b.log.snapshot()
	return v, nil
}

func (v *buildView) timeline() *timeline.Timeline {
	return timeline.New(v.Summary, v.Events, v.Slots, time.Now())
}

// graph is the build's resolved graph, from its history.
func (v *buildView) graph() *pb.GraphResolved {
	for _, ev := range v.Events {
		if g := ev.GetGraphResolved(); g != nil {
			return g
		}
	}
	return nil
}

// stratumView is one stratum (or system) and the steps it gathers.
type stratumView struct {
	Name  string
	Kind  pb.StepKind
	State pb.StepState
	Parts []*pb.StepStatus
}

// strata groups the steps by the strata and systems that depend on them.
func (v *buildView) strata() []stratumView {
	g := v.graph()
	if g == nil {
		return nil
	}
	byName := map[string]*pb.StepStatus{}
	for _, st := range v.Steps {
		byName[st.GetStep().GetStepName()] = st
	}
	var out []stratumView
	for _, s := range g.Steps {
		if s.Kind == pb.StepKind_STEP_KIND_CHUNK {
			continue
		}
		sv := stratumView{Name: s.Name, Kind: s.Kind, State: byName[s.Name].GetState()}
		for _, dep := range s.DependsOn {
			if st := byName[dep]; st != nil {
				sv.Parts = append(sv.Parts, st)
			}
		}
		out = append(out, sv)
	}
	return out
}

func (d *dashboard) build(w http.ResponseWriter, r *http.Request) {
	v, err := d.c.viewBuild(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	id := v.Summary.BuildId
	tl := v.timeline()
	d.render(w, "build", map[string]any{
		"Title":  "Build " + id,
		"Build":  v.Summary,
		"Steps":  v.Steps,
		"Strata": v.strata(),
		"Graph":  v.graph(),
		"Gantt":  template.HTML(tl.InlineSVG(stepHref(id))),
		"Bars":   len(tl.Bars),
		"From":   v.Published,
		"Live":   v.Summary.State == pb.BuildState_BUILD_STATE_RESOLVING || v.Summary.State == pb.BuildState_BUILD_STATE_RUNNING,
	})
}

func stepHref(build string) func(string) string {
	return func(step string) string { return pageFuncs["stepURL"].(func(string, string) string)(build, step) }
}

func (d *dashboard) gantt(w http.ResponseWriter, r *http.Request) {
	v, err := d.c.viewBuild(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(v.timeline().InlineSVG(stepHref(v.Summary.BuildId)))
}

// findStep is the named step of a build view.
func (v *buildView) findStep(name string) *pb.StepStatus {
	for _, st := range v.Steps {
		if st.GetStep().GetStepName() == name {
			return st
		}
	}
	return nil
}

// viewStep finds the build and step a step page's path names, or answers
// 404 and returns false.
func (d *dashboard) viewStep(w http.ResponseWriter, r *http.Request) (*buildView, *pb.StepStatus, bool) {
	v, err := d.c.viewBuild(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, nil, false
	}
	st := v.findStep(r.PathValue("step"))
	if st == nil {
		http.Error(w, "no step "+r.PathValue("step")+" in this build", http.StatusNotFound)
		return nil, nil, false
	}
	return v, st, true
}

func (d *dashboard) step(w http.ResponseWriter, r *http.Request) {
	v, st, ok := d.viewStep(w, r)
	if !ok {
		return
	}
	data := map[string]any{
		"Title":   st.Step.StepName + " in build " + v.Summary.BuildId,
		"Build":   v.Summary,
		"Step":    st,
		"Running": st.State == pb.StepState_STEP_STATE_RUNNING,
		"From":    v.Published,
		"Profile": template.HTML(profileSVG(st.GetProfile())),
	}
	if st.Log != nil && d.opts.Logs != nil {
		text, complete, err := d.readLog(r.Context(), st.Log, maxInlineLog)
		if err != nil {
			data["LogError"] = err.Error()
		}
		data["Log"], data["LogComplete"] = text, complete
	}
	d.render(w, "step", data)
}

// limitWriter keeps the first n bytes written to it and then fails.
type limitWriter struct {
	b bytes.Buffer
	n int
}

var errFull = errors.New("enough")

func (l *limitWriter) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); len(p) > room {
		l.b.Write(p[:room])
		return room, errFull
	}
	return l.b.Write(p)
}

// readLog reads up to limit bytes of a log from the cache.
func (d *dashboard) readLog(ctx context.Context, p *pb.Digest, limit int) (string, bool, error) {
	dg, err := digest.FromProto(p)
	if err != nil {
		return "", false, err
	}
	lw := &limitWriter{n: limit}
	err = d.opts.Logs.Fetch(ctx, dg, lw)
	if errors.Is(err, errFull) {
		return lw.b.String(), false, nil
	}
	return lw.b.String(), err == nil, err
}

func (d *dashboard) stepLog(w http.ResponseWriter, r *http.Request) {
	_, st, ok := d.viewStep(w, r)
	if !ok {
		return
	}
	if st.Log == nil || d.opts.Logs == nil {
		http.Error(w, "no log of this step is stored (yet)", http.StatusNotFound)
		return
	}
	dg, err := digest.FromProto(st.Log)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := d.opts.Logs.Fetch(r.Context(), dg, w); err != nil {
		d.c.log.Warn("cannot read a step's log from the cache", "step", st.Step.StepName, "error", err)
	}
}

func (d *dashboard) profile(w http.ResponseWriter, r *http.Request) {
	_, st, ok := d.viewStep(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(profileSVG(st.GetProfile()))
}

func (d *dashboard) workers(w http.ResponseWriter, r *http.Request) {
	ws := d.c.workerInfo()
	slices.SortFunc(ws, func(a, b WorkerInfo) int { return strings.Compare(a.Name, b.Name) })
	d.render(w, "workers", map[string]any{"Title": "Workers", "Workers": ws, "Now": time.Now()})
}

// Helpers for the templates.

// stateName is a step's or build's state as a word: "running".
func stateName(s fmt.Stringer) string {
	name := s.String()
	if i := strings.Index(name, "STATE_"); i >= 0 {
		return stateLabel(name, name[:i+len("STATE_")])
	}
	return stateLabel(name, "")
}

func durationText(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return timeline.ShortDuration(d.AsDuration())
}

func timeText(t any) string {
	var tt time.Time
	switch v := t.(type) {
	case *timestamppb.Timestamp:
		if v == nil {
			return ""
		}
		tt = v.AsTime()
	case time.Time:
		tt = v
	}
	if tt.IsZero() {
		return ""
	}
	return tt.Local().Format("2006-01-02 15:04:05")
}

func bytesText(n any) string {
	var f float64
	switch v := n.(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	case int:
		f = float64(v)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", f)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
