package notify

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"distbuild/internal/tlsflags/tlstest"
	"distbuild/notify/notifytest"
)

func TestMailGoesToFarmRecipientsAndToABuildsOwnAddresses(t *testing.T) {
	box := notifytest.Start(t, nil, "", "")
	addr := box.Addr
	ops, _ := ParseRecipient("ops@example.com")
	m := &Mailer{Server: addr, From: "farm@example.com", Recipients: []Recipient{ops}}
	d, reg := open(t, Config{Targets: []Target{m}})
	if !d.CanMail() {
		t.Fatal("CanMail is false with a mailer")
	}
	ev := testEvent(BuildFailed)
	ev.URL = "http://controller:7879/builds/b1"
	d.Submit(d.Route(ev))
	d.Submit(d.Route(testEvent(BuildSucceeded))) // ops gets failures only
	own, err := d.MailTo(testEvent(BuildSucceeded), []string{"dev@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	d.Submit([]*Delivery{own})
	waitFor(t, "two messages", func() bool { return outcomes(reg, "mail", "delivered") == 2 })
	msgs := box.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	byTo := map[string]notifytest.Message{}
	for _, r := range msgs {
		byTo[strings.Join(r.To, ",")] = r
	}
	failed, ok := byTo["ops@example.com"]
	if !ok || failed.From != "farm@example.com" {
		t.Fatalf("no failure message to ops: %+v", msgs)
	}
	text := failed.Text(t)
	if s := failed.Header(t).Get("Subject"); s != "distbuild: build b1 failed (systems/x.morph)" {
		t.Errorf("subject %q", s)
	}
	for _, want := range []string{"Build b1 failed.", "Step zlib@core on worker w1, exit status 2", "    make: *** [all] Error 2",
		"initiator logs b1 zlib@core", "Dashboard: http://controller:7879/builds/b1"} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
	if _, ok := byTo["dev@example.com"]; !ok {
		t.Errorf("no message to the build's own address: %+v", msgs)
	}
}

func TestMailUsesStartTLSAndAuthenticates(t *testing.T) {
	dir := t.TempDir()
	caPath, certPath, keyPath := tlstest.Generate(t, dir, "smtp")
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	box := notifytest.Start(t, &tls.Config{Certificates: []tls.Certificate{cert}}, "farm", "hunter2")
	addr := box.Addr
	caPEM, _ := os.ReadFile(caPath)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	os.WriteFile(dir+"/auth", []byte("farm\nhunter2\n"), 0o600)
	user, pass, err := ReadCredentials(dir + "/auth")
	if err != nil {
		t.Fatal(err)
	}
	m := &Mailer{Server: addr, From: "farm@example.com", Username: user, Password: pass, RootCAs: roots,
		Recipients: []Recipient{{Events: Filter{WorkerLost}, Address: "ops@example.com"}}}
	d, reg := open(t, Config{Targets: []Target{m}})
	d.Submit(d.Route(&Event{Event: WorkerLost, Time: time.Now(), Worker: &Worker{Name: "w3", Arch: "x86_64", Slots: 2, Reason: "missed its lease"}}))
	waitFor(t, "the message", func() bool { return outcomes(reg, "mail", "delivered") == 1 })
	r := box.Messages()[0]
	if !r.TLS || r.User != "farm" {
		t.Errorf("message sent with tls=%v auth=%q; want STARTTLS and user farm", r.TLS, r.User)
	}
	if text := r.Text(t); !strings.Contains(text, "Worker w3 (x86_64, 2 slots): worker-lost.") || !strings.Contains(text, "missed its lease") {
		t.Errorf("message:\n%s", text)
	}

	// Wrong credentials: the server refuses, the dispatcher retries, then
	// gives up.
	m.Password = "wrong"
	d2, reg2 := open(t, Config{Targets: []Target{m}, RetryFor: 50 * time.Millisecond})
	d2.Submit(d2.Route(&Event{Event: WorkerLost, Time: time.Now(), Worker: &Worker{Name: "w4"}}))
	waitFor(t, "giving up", func() bool { return outcomes(reg2, "mail", "gave_up") == 1 })
	if n := len(box.Messages()); n != 1 {
		t.Errorf("%d messages after a failed login, want still 1", n)
	}
}

func TestReadCredentialsRefusesAnythingButTwoLines(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{"", "onlyuser\n", "a\nb\nc\n"} {
		os.WriteFile(dir+"/f", []byte(bad), 0o600)
		if _, _, err := ReadCredentials(dir + "/f"); err == nil {
			t.Errorf("ReadCredentials(%q) took it", bad)
		}
	}
}
