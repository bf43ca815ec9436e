package controller

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"

	pb "distbuild/proto/distbuild/v1"
)

// serveEvents streams a build's events as server-sent events
// (text/event-stream), for the dashboard and for scripts: the build's
// history first, then each event as it becomes durable, until the build
// ends. Each event's data is the BuildEvent as protojson; its SSE event
// name is the event's kind ("step_started", "step_finished", ...), and
// its SSE id is its sequence, so a browser that reconnects resumes with
// Last-Event-ID where it left off (?from=N starts after sequence N).
// Step output is relayed only with ?output=STEP (one step's) or
// ?output=* (every step's). A last "end" event says the build is over.
//
// A viewer is not a follower: watching a build does not keep a build
// whose initiator left from being cancelled. Events reach viewers through
// the build's event log, never under the controller's lock; a viewer that
// falls behind loses output, as a slow initiator does.
func (c *Controller) serveEvents(w http.ResponseWriter, r *http.Request) {
	b, err := c.lookup(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no build " + r.PathValue("id")})
		return
	}
	after := r.Header.Get("Last-Event-ID")
	if after == "" {
		after = r.URL.Query().Get("from")
	}
	from := uint64(0)
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "from and Last-Event-ID take an event's sequence"})
			return
		}
		from = n
	}
	output := r.URL.Query().Get("output")
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sub := b.log.subscribe(from + 1)
	defer b.log.unsubscribe(sub)
	var buf bytes.Buffer
	buf.WriteString(": following build " + b.id + "\nretry: 2000\n\n")
	for {
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		buf.Reset()
		ev, err := sub.next(r.Context())
		if err != nil {
			return // the viewer went away
		}
		if ev == nil {
			buf.WriteString("event: end\ndata: {}\n\n")
			w.Write(buf.Bytes())
			rc.Flush()
			return
		}
		if out := ev.GetStepOutput(); out != nil && output != "*" && output != out.StepName {
			continue
		}
		writeSSE(&buf, ev)
	}
}

// writeSSE encodes one event in the text/event-stream format.
func writeSSE(buf *bytes.Buffer, ev *pb.BuildEvent) {
	data, err := protojson.Marshal(ev)
	if err != nil {
		return
	}
	if ev.Sequence > 0 {
		fmt.Fprintf(buf, "id: %d\n", ev.Sequence)
	}
	kind := "event"
	if ev.Event != nil {
		kind = string(ev.ProtoReflect().WhichOneof(ev.ProtoReflect().Descriptor().Oneofs().ByName("event")).Name())
	}
	fmt.Fprintf(buf, "event: %s\n", kind)
	// protojson writes one line, but the format breaks data at newlines.
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		buf.WriteString("data: ")
		buf.Write(line)
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}
