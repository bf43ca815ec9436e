package controller_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/prometheus/client_golang/prometheus"

	"distbuild/controller"
	"distbuild/internal/observability"
	"distbuild/internal/observability/observabilitytest"
	pb "distbuild/proto/distbuild/v1"
)

// serveHTTP serves the controller's metrics and JSON API as the daemon
// does, on a real HTTP server.
func serveHTTP(t *testing.T, c *controller.Controller, reg *prometheus.Registry) string {
	mux := http.NewServeMux()
	mux.Handle("/metrics", observability.MetricsHandler(reg))
	mux.Handle("/api/", c.APIHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		var err error
		if m, ok := into.(proto.Message); ok {
			err = protojson.Unmarshal(data, m)
		} else {
			err = json.Unmarshal(data, into)
		}
		if err != nil {
			t.Fatalf("%s: %v in %s", url, err, data)
		}
	}
	return resp.StatusCode
}

func TestMetricsAndTheJSONAPIFollowABuild(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	reg := observability.NewRegistry()
	f.cfg.Metrics = reg
	f.restartController()
	url := serveHTTP(t, f.ctl, reg)

	before := observabilitytest.Scrape(t, nil, url+"/metrics")
	if v, ok := before.Value("distbuild_controller_steps_finished_total"); !ok || v != 0 {
		t.Errorf("before any build, steps finished = %v (present %v), want 0", v, ok)
	}
	f.worker("w1", 2)
	events := f.start("systems/test.morph").wait()
	id := events[0].BuildId
	f.start("systems/test.morph").wait() // everything cached now

	m := observabilitytest.Scrape(t, nil, url+"/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"distbuild_controller_steps_started_total", nil, 7},
		{"distbuild_controller_steps_finished_total", []string{"outcome", "built"}, 7},
		{"distbuild_controller_step_ready_to_start_seconds", nil, 7},
		{"distbuild_controller_resolve_cache_misses_total", nil, 7},
		{"distbuild_controller_resolve_cache_hits_total", nil, 7},
		{"distbuild_controller_builds_ended_total", []string{"state", "succeeded"}, 2},
		{"distbuild_controller_builds", []string{"state", "succeeded"}, 2},
		{"distbuild_controller_builds", []string{"state", "running"}, 0},
		{"distbuild_controller_steps", []string{"state", "running"}, 0},
		{"distbuild_controller_workers_connected", nil, 1},
		{"distbuild_controller_worker_slots", []string{"state", "free"}, 2},
		{"distbuild_controller_step_retries_total", nil, 0},
		{"distbuild_controller_step_requeues_total", nil, 0},
	} {
		if got, ok := m.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if got, _ := m.Value("distbuild_controller_events_written_total"); got < float64(len(events)/2) {
		t.Errorf("events written = %v after two builds, the first of %d events", got, len(events))
	}

	var list pb.ListResponse
	if code := getJSON(t, url+"/api/builds", &list); code != http.StatusOK || len(list.Builds) != 2 || list.Builds[1].BuildId != id {
		t.Errorf("/api/builds: %d %v, want both builds, %s the older", code, &list, id)
	}
	var st pb.StatusResponse
	if code := getJSON(t, url+"/api/builds/"+id, &st); code != http.StatusOK || len(st.Steps) != 7 || st.Build.State != pb.BuildState_BUILD_STATE_SUCCEEDED {
		t.Errorf("/api/builds/%s: %d %v, want the succeeded build with its 7 steps", id, code, &st)
	}
	for _, s := range st.Steps {
		if s.State != pb.StepState_STEP_STATE_FINISHED || s.Worker != "w1" {
			t.Errorf("step %s: %v on %q, want finished on w1", s.Step.GetStepName(), s.State, s.Worker)
		}
	}
	if code := getJSON(t, url+"/api/builds/no-such-build", &st); code != http.StatusNotFound {
		t.Errorf("/api/builds/no-such-build: %d, want 404", code)
	}
	var workers struct{ Workers []controller.WorkerInfo }
	if code := getJSON(t, url+"/api/workers", &workers); code != http.StatusOK || len(workers.Workers) != 1 ||
		workers.Workers[0].Name != "w1" || workers.Workers[0].Slots != 2 || workers.Workers[0].FreeSlots != 2 {
		t.Errorf("/api/workers: %d %+v, want w1 with 2 free slots", code, workers)
	}
}
