package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"distbuild/notify"
	"distbuild/notify/notifytest"
)

// TestFarmEventsReachHooksWebhooksAndMail runs the real controller with a
// hook, a signed webhook and e-mail through a real SMTP server, and a build
// that fails: each hears what the README promises.
func TestFarmEventsReachHooksWebhooksAndMail(t *testing.T) {
	dir := t.TempDir()
	hookLog := filepath.Join(dir, "hook.jsonl")
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("webhook-secret\n"), 0o600)
	box := notifytest.Start(t, nil, "", "")
	var mu sync.Mutex
	var posts []notify.Event
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(notify.SignatureHeader) != notify.Sign([]byte("webhook-secret"), body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev notify.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, ev)
		mu.Unlock()
	}))
	defer receiver.Close()

	f := startFarmWith(t, []string{
		"--hook", "*=sh -c 'cat >> " + hookLog + "'",
		"--webhook", "build-failed=" + receiver.URL + "/distbuild",
		"--webhook-secret-file", secret,
		"--smtp-server", box.Addr, "--smtp-from", "farm@example.com",
		"--notify-email", "build-failed=ops@example.com",
		"--dashboard-url", "http://farm.example:7879",
	}, "worker-1")
	f.change("strata/demo-libs/checksum.morph", "- make\n", "- echo about to fail; exit 3\n")
	r := f.initiator("build", "--partial", "checksum", "--notify", "dev@example.com", demoSystem)
	if r.code == 0 {
		t.Fatalf("the build succeeded:\n%s", r.stdout)
	}

	waitFor(t, "two messages and a webhook POST", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(box.Messages()) == 2 && len(posts) == 1
	})
	var hooked []notify.Event
	waitFor(t, "the hook to hear of the failure", func() bool {
		hooked = notifytest.ReadEvents[notify.Event](hookLog)
		return slices.ContainsFunc(hooked, func(ev notify.Event) bool { return ev.Event == notify.BuildFailed })
	})
	var names []string
	for _, ev := range hooked {
		names = append(names, ev.Event)
	}
	for _, want := range []string{notify.WorkerJoined, notify.BuildStarted, notify.StepFailed, notify.BuildFailed} {
		if !slices.Contains(names, want) {
			t.Errorf("the hook heard %v, not %s", names, want)
		}
	}
	failed := posts[0]
	if failed.Event != notify.BuildFailed || failed.Build.FailingStep == nil || failed.Build.FailingStep.Name != "checksum" ||
		!slices.ContainsFunc(failed.Build.FailingStep.LogTail, func(l string) bool { return strings.HasSuffix(l, "s] about to fail") }) || !strings.HasPrefix(failed.URL, "http://farm.example:7879/builds/") {
		t.Errorf("webhook got %+v (failing step %+v)", failed, failed.Build.FailingStep)
	}
	for _, m := range box.Messages() {
		text := m.Text(t)
		if len(m.To) != 1 || (m.To[0] != "ops@example.com" && m.To[0] != "dev@example.com") {
			t.Errorf("a message went to %v", m.To)
		}
		for _, want := range []string{"Build " + failed.Build.ID + " failed.", "Step checksum on worker worker-1", "s] about to fail\n", "initiator logs " + failed.Build.ID + " checksum"} {
			if !strings.Contains(text, want) {
				t.Errorf("the message to %v lacks %q:\n%s", m.To, want, text)
			}
		}
	}
}
