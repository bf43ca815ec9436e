package controller_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"distbuild/controller"
	pb "distbuild/proto/distbuild/v1"
)

// serveDashboard serves the dashboard and the JSON API as the daemon
// does, reading logs from the farm's cache and the trove's metrics from
// troveMetrics.
func serveDashboard(t *testing.T, f *farm, troveMetrics string) string {
	mux := http.NewServeMux()
	mux.Handle("/api/", f.ctl.APIHandler())
	mux.Handle("/", f.ctl.DashboardHandler(controller.DashboardOptions{Logs: f.cache, TroveMetrics: troveMetrics}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func getPage(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

func TestDashboardPagesShowAFinishedBuild(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	w := f.worker("w1", 2)
	w.profiles = map[string]*pb.StepProfile{"hello": {
		Duration: durationpb.New(3 * time.Second),
		Phases: []*pb.PhaseTime{{Name: "fetch", Duration: durationpb.New(time.Second)},
			{Name: "build", Start: durationpb.New(time.Second), Duration: durationpb.New(2 * time.Second)}},
		Samples: []*pb.ResourceSample{{Offset: durationpb.New(time.Second), CpuCores: 1.5, MemoryBytes: 10 << 20},
			{Offset: durationpb.New(2 * time.Second), CpuCores: 0.5, MemoryBytes: 20 << 20}},
	}}
	trove := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# TYPE distbuild_trove_store_bytes gauge\ndistbuild_trove_store_bytes 3072\n"+
			"# TYPE distbuild_trove_store_max_bytes gauge\ndistbuild_trove_store_max_bytes 4096\n"+
			"# TYPE distbuild_trove_evictions_total counter\ndistbuild_trove_evictions_total 2\n")
	}))
	defer trove.Close()
	url := serveDashboard(t, f, trove.URL+"/metrics")
	id := f.start("systems/test.morph").wait()[0].BuildId

	pages := []struct {
		path string
		want []string
	}{
		{"/", []string{`data-build="` + id + `"`, "succeeded"}},
		{"/builds/" + id, []string{`id="steps"`, `data-step="hello"`, `class="stratum"`, `<svg`, `class="bar finished`, "critical"}},
		{"/builds/" + id + "/steps/hello", []string{`class="phase" data-phase="fetch"`, `polyline class="cpu"`, `polyline class="memory"`, "log of hello"}},
		{"/builds/" + id + "/steps/hello/log", []string{"log of hello"}},
		{"/builds/" + id + "/gantt.svg", []string{`class="bar finished`}},
		{"/workers", []string{`data-worker="w1"`}},
		{"/cache", []string{"3.0 KiB of 4.0 KiB (75%)", "2 artifacts", "hit rate"}},
		{"/static/build.js", []string{"EventSource"}},
	}
	for _, p := range pages {
		code, body := getPage(t, url+p.path)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200\n%s", p.path, code, body)
			continue
		}
		for _, want := range p.want {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s does not show %q:\n%s", p.path, want, body)
			}
		}
	}
	if _, body := getPage(t, url+"/builds/"+id); strings.Count(body, `class="bar finished`) != 7 {
		t.Errorf("the Gantt chart has %d finished bars, want one for each of the 7 steps built", strings.Count(body, `class="bar finished`))
	}
	for _, path := range []string{"/builds/no-such-build", "/builds/" + id + "/steps/no-such-step", "/nowhere"} {
		if code, _ := getPage(t, url+path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ id, name, data string }

func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data += line[6:]
		}
	}
	return out
}

func TestEventStreamFollowsABuildAndResumesAfterLastEventID(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.worker("w1", 2)
	url := serveDashboard(t, f, "")
	build := f.start("systems/test.morph")
	first := build.next() // accepted: the build's id
	id := first.BuildId

	// Followed from the start while it runs: every step, then the end.
	resp, err := http.Get(url + "/api/builds/" + id + "/events?output=hello")
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	events := readSSE(t, resp.Body)
	resp.Body.Close()
	build.wait()
	count := map[string]int{}
	for _, e := range events {
		count[e.name]++
	}
	if count["accepted"] != 1 || count["step_started"] != 7 || count["step_finished"] != 7 || count["build_finished"] != 1 || events[len(events)-1].name != "end" {
		t.Errorf("events %v, want accepted, 7 steps started and finished, build_finished and end", count)
	}
	if count["step_output"] != 1 {
		t.Errorf("%d output events with ?output=hello, want hello's one", count["step_output"])
	}
	if !strings.Contains(events[0].data, `"buildId":"`+id+`"`) || events[0].id != "1" {
		t.Errorf("first event id %q data %s, want sequence 1 of build %s as protojson", events[0].id, events[0].data, id)
	}

	// Resumed after an event: only what came after it.
	req, _ := http.NewRequest(http.MethodGet, url+"/api/builds/"+id+"/events", nil)
	req.Header.Set("Last-Event-ID", "3")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again := readSSE(t, resp.Body)
	resp.Body.Close()
	if len(again) == 0 || again[0].id != "4" || len(again) != len(events)-3-count["step_output"] {
		t.Errorf("after Last-Event-ID 3: %d events from id %q, want %d from 4", len(again), again[0].id, len(events)-3-count["step_output"])
	}
	if code, _ := getPage(t, url+"/api/builds/no-such-build/events"); code != http.StatusNotFound {
		t.Errorf("events of an unknown build: %d, want 404", code)
	}
}
