package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
)

func testEvent(name string) *Event {
	return &Event{Event: name, Time: time.Now(), Build: &Build{ID: "b1", System: "systems/x.morph", Commit: "c0ffee", Repo: "file:///defs", State: "FAILED",
		FailingStep: &Step{Name: "zlib@core", Worker: "w1", ExitCode: 2, LogTail: []string{"make: *** [all] Error 2"}, Log: "sha256:ab/12"}}}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func open(t *testing.T, cfg Config) (*Dispatcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	if cfg.FirstRetry == 0 {
		cfg.FirstRetry = 10 * time.Millisecond
	}
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, reg
}

func outcomes(reg *prometheus.Registry, kind, outcome string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "distbuild_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestHookGetsTheEventOnStdinAndIsRetriedUntilItSucceeds(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hook.sh")
	// Fails the first two runs, then records stdin and the environment.
	os.WriteFile(script, []byte(`#!/bin/sh
n=$(cat "$1/runs" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1/runs"
echo "run $n"
[ $n -ge 3 ] || { echo "not yet" >&2; exit 1; }
cat > "$1/event.json"; echo "$DISTBUILD_EVENT $DISTBUILD_EVENT_ID" > "$1/env"
`), 0o755)
	h, err := ParseHook(fmt.Sprintf("build-failed,step-failed=%s '%s'", script, dir), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, reg := open(t, Config{Targets: []Target{h}})
	if got := d.Route(testEvent(BuildSucceeded)); len(got) != 0 {
		t.Fatalf("a build-failed hook was routed a build-succeeded event: %+v", got)
	}
	ev := testEvent(BuildFailed)
	ds := d.Route(ev)
	if len(ds) != 1 {
		t.Fatalf("routed to %d targets, want 1", len(ds))
	}
	d.Submit(ds)
	waitFor(t, "the delivered metric", func() bool { return outcomes(reg, "hook", "delivered") == 1 })
	var got Event
	data, _ := os.ReadFile(filepath.Join(dir, "event.json"))
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("hook stdin is not JSON: %v\n%s", err, data)
	}
	if got.Event != BuildFailed || got.Build.FailingStep.Name != "zlib@core" || !reflect.DeepEqual(got.Build.FailingStep.LogTail, ev.Build.FailingStep.LogTail) {
		t.Errorf("hook read %+v", got)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if want := BuildFailed + " " + ev.ID + "\n"; string(env) != want {
		t.Errorf("hook environment says %q, want %q", env, want)
	}
	if f := outcomes(reg, "hook", "failed"); f != 2 {
		t.Errorf("failed attempts counted %v, want 2", f)
	}
}

func TestHookThatHangsIsKilledWithItsChildrenAndGivenUpOn(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	h, err := ParseHook(fmt.Sprintf(`*=sh -c 'sleep 60 & echo $! > %s; wait'`, pidFile), 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, reg := open(t, Config{Targets: []Target{h}, RetryFor: 100 * time.Millisecond})
	d.Submit(d.Route(testEvent(BuildFailed)))
	waitFor(t, "the hook to be given up on", func() bool { return outcomes(reg, "hook", "gave_up") == 1 })
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the hook never started its child: %v", err)
	}
	var pid int
	fmt.Sscan(string(data), &pid)
	waitFor(t, "the hook's child to be killed", func() bool { return syscall.Kill(pid, 0) != nil })
	if got := testutil.ToFloat64(d.pending); got != 0 {
		t.Errorf("pending = %v after giving up, want 0", got)
	}
}

func TestParseSpec(t *testing.T) {
	f, v, err := ParseSpec("webhook", "https://x.example/hook?a=b", false)
	if err != nil || f != nil || v != "https://x.example/hook?a=b" {
		t.Errorf("a URL with '=' alone: %v %q %v", f, v, err)
	}
	f, v, err = ParseSpec("webhook", "build-failed,worker-lost=https://x.example/?a=b", false)
	if err != nil || !reflect.DeepEqual(f, Filter{BuildFailed, WorkerLost}) || v != "https://x.example/?a=b" {
		t.Errorf("filtered URL: %v %q %v", f, v, err)
	}
	if f, v, err = ParseSpec("hook", "*=/bin/x", true); err != nil || f != nil || v != "/bin/x" {
		t.Errorf("*: %v %q %v", f, v, err)
	}
	for _, bad := range []string{"/bin/x", "build-exploded=/bin/x", "build-failed="} {
		if _, _, err := ParseSpec("hook", bad, true); err == nil {
			t.Errorf("ParseSpec(hook, %q) took it", bad)
		}
	}
	if _, err := ParseRecipient("build-failed=not an address"); err == nil {
		t.Error("a bad address was taken")
	}
	if r, err := ParseRecipient("ops@example.com"); err != nil || !reflect.DeepEqual(r.Events, DefaultMailEvents) {
		t.Errorf("ParseRecipient: %+v %v", r, err)
	}
}

// flakyReceiver is a webhook receiver that answers with the given codes in
// turn (then 204), recording what it got.
type flakyReceiver struct {
	mu     sync.Mutex
	codes  []int
	bodies [][]byte
	sigs   []string
	events []string
}

func (f *flakyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = append(f.bodies, body)
	f.sigs = append(f.sigs, r.Header.Get(SignatureHeader))
	f.events = append(f.events, r.Header.Get("X-Distbuild-Event"))
	code := http.StatusNoContent
	if len(f.codes) > 0 {
		code, f.codes = f.codes[0], f.codes[1:]
	}
	w.WriteHeader(code)
}

func (f *flakyReceiver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

func TestWebhookIsSignedAndRetriedWithBackoff(t *testing.T) {
	recv := &flakyReceiver{codes: []int{http.StatusServiceUnavailable, http.StatusTooManyRequests}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	secret := []byte("s3cret")
	wh, err := ParseWebhook("build-failed="+srv.URL+"/hook?x=1", secret, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d, reg := open(t, Config{Targets: []Target{wh}})
	d.Submit(d.Route(testEvent(BuildFailed)))
	d.Submit(d.Route(testEvent(WorkerJoined))) // not wanted: never sent
	waitFor(t, "the delivery", func() bool { return outcomes(reg, "webhook", "delivered") == 1 })
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.bodies) != 3 {
		t.Fatalf("receiver got %d POSTs, want 3 (two refusals, then success)", len(recv.bodies))
	}
	for i, body := range recv.bodies {
		if recv.sigs[i] != Sign(secret, body) || recv.events[i] != BuildFailed {
			t.Errorf("POST %d: signature %q event %q; want %q %q", i, recv.sigs[i], recv.events[i], Sign(secret, body), BuildFailed)
		}
	}
	if Sign([]byte("other"), recv.bodies[0]) == recv.sigs[0] {
		t.Error("the signature does not depend on the secret")
	}
	var ev Event
	if err := json.Unmarshal(recv.bodies[2], &ev); err != nil || ev.Build.ID != "b1" {
		t.Errorf("body %s: %v", recv.bodies[2], err)
	}
}

func TestWebhookThatRefusesTheRequestIsNotRetried(t *testing.T) {
	recv := &flakyReceiver{codes: []int{http.StatusUnauthorized, http.StatusUnauthorized}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	wh, err := ParseWebhook(srv.URL, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d, reg := open(t, Config{Targets: []Target{wh}})
	d.Submit(d.Route(testEvent(StepFailed)))
	waitFor(t, "giving up", func() bool { return outcomes(reg, "webhook", "gave_up") == 1 })
	time.Sleep(50 * time.Millisecond) // a retry would come after 10ms
	if n := recv.count(); n != 1 {
		t.Errorf("receiver got %d POSTs, want exactly 1", n)
	}
}

func TestPendingDeliveriesSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	down := &flakyReceiver{codes: []int{503, 503, 503, 503, 503, 503, 503, 503}}
	srvDown := httptest.NewServer(down)
	defer srvDown.Close()
	wh, _ := ParseWebhook(srvDown.URL, nil, time.Minute)
	wh.Spec = "the-webhook" // the same target name in both runs
	d, reg := open(t, Config{DB: db, Targets: []Target{wh}, FirstRetry: time.Hour})
	ev := testEvent(BuildFailed)
	ds := d.Route(ev)
	if err := db.Update(func(tx *bolt.Tx) error { return Persist(tx, ds) }); err != nil {
		t.Fatal(err)
	}
	d.Submit(ds)
	waitFor(t, "a failed attempt", func() bool { return outcomes(reg, "webhook", "failed") == 1 })
	d.Close()

	up := &flakyReceiver{}
	srvUp := httptest.NewServer(up)
	defer srvUp.Close()
	wh2, _ := ParseWebhook(srvUp.URL, nil, time.Minute)
	wh2.Spec = "the-webhook"
	_, reg2 := open(t, Config{DB: db, Targets: []Target{wh2}})
	waitFor(t, "delivery after the restart", func() bool { return outcomes(reg2, "webhook", "delivered") == 1 })
	var got Event
	json.Unmarshal(up.bodies[0], &got)
	if got.ID != ev.ID {
		t.Errorf("redelivered event id %q, want %q", got.ID, ev.ID)
	}
	waitFor(t, "the outbox to empty", func() bool {
		n := -1
		db.View(func(tx *bolt.Tx) error { n = tx.Bucket([]byte(Bucket)).Stats().KeyN; return nil })
		return n == 0
	})
}

func TestDroppedTargetAndDamagedRecordsDoNotStopTheDispatcher(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := Persist(tx, []*Delivery{{ID: 7, Target: "webhook gone", Event: testEvent(BuildFailed)}}); err != nil {
			return err
		}
		return tx.Bucket([]byte(Bucket)).Put(deliveryKey(8), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	d, reg := open(t, Config{DB: db})
	// One damaged record at open, one whose target is gone when tried.
	waitFor(t, "both to be dropped", func() bool { return outcomes(reg, "unknown", "dropped") == 2 })
	db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket([]byte(Bucket)).Stats().KeyN; n != 0 {
			t.Errorf("%d records left in the outbox", n)
		}
		return nil
	})
	if d.nextID != 8 {
		t.Errorf("next id %d, want 8 (after the restored 7)", d.nextID)
	}
}
