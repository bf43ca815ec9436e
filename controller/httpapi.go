package controller

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "distbuild/proto/distbuild/v1"
)

// APIHandler serves a read-only JSON view of the controller, for scripts
// and the dashboard: the same answers the gRPC API gives initiators, as
// protojson (field names in lowerCamelCase), so there is no second
// description of a build to keep in step with the first.
//
//	GET /api/builds            List with ended builds included (?live=true: live ones only)
//	GET /api/builds/{id}       Status: the build and each of its steps
//	GET /api/workers           connected workers: slots, arch, tags, jobs
//	GET /api/builds/{id}/events  the build's events as server-sent events
func (c *Controller) APIHandler() http.Handler {
	mux := http.NewServeMux()
	svc := &buildService{c: c}
	mux.HandleFunc("GET /api/builds", func(w http.ResponseWriter, r *http.Request) {
		resp, err := svc.List(r.Context(), &pb.ListRequest{IncludeEnded: r.URL.Query().Get("live") != "true"})
		writeProto(w, resp, err)
	})
	mux.HandleFunc("GET /api/builds/{id}", func(w http.ResponseWriter, r *http.Request) {
		resp, err := svc.Status(r.Context(), &pb.StatusRequest{BuildId: r.PathValue("id")})
		writeProto(w, resp, err)
	})
	mux.HandleFunc("GET /api/builds/{id}/events", c.serveEvents)
	mux.HandleFunc("GET /api/workers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"workers": c.workerInfo()})
	})
	return mux
}

// WorkerInfo is a connected worker as /api/workers shows it.
type WorkerInfo struct {
	Name      string            `json:"name"`
	Arch      string            `json:"arch"`
	Tags      map[string]string `json:"tags,omitempty"`
	Slots     int               `json:"slots"`
	FreeSlots int               `json:"freeSlots"`
	Connected time.Time         `json:"connected"`
	// LastSeen is when the worker last sent anything.
	LastSeen time.Time `json:"lastSeen"`
	// Jobs are the jobs it was given and has not reported finished.
	Jobs []WorkerJob `json:"jobs"`
}

// WorkerJob is one job a worker holds.
type WorkerJob struct {
	JobID string `json:"jobId"`
	Step  string `json:"step"`
}

func (c *Controller) workerInfo() []WorkerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []WorkerInfo{}
	for _, w := range c.sched.Workers() {
		info := WorkerInfo{Name: w.Name, Arch: w.Arch, Tags: w.Tags, Slots: w.Slots, FreeSlots: max(w.Free(), 0), Jobs: []WorkerJob{}}
		if s := c.sessions[w.Name]; s != nil {
			info.Connected = s.connected
			s.mu.Lock()
			info.LastSeen = s.lastSeen
			s.mu.Unlock()
			for id, step := range s.jobs {
				info.Jobs = append(info.Jobs, WorkerJob{JobID: id, Step: step})
			}
			slices.SortFunc(info.Jobs, func(a, b WorkerJob) int { return strings.Compare(a.JobID, b.JobID) })
		}
		out = append(out, info)
	}
	return out
}

// writeProto answers with m as protojson, or with err's status as an
// HTTP error.
func writeProto(w http.ResponseWriter, m proto.Message, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		if status.Code(err) == codes.NotFound {
			code = http.StatusNotFound
		}
		writeJSON(w, code, map[string]string{"error": status.Convert(err).Message()})
		return
	}
	data, err := protojson.Marshal(m)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(data, '\n'))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
