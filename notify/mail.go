package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// mailTarget names the one mail target: per-build recipients reuse it.
const mailTarget = "mail"

// DefaultMailEvents are what a --notify-email address without events
// receives: the farm-wide failures.
var DefaultMailEvents = Filter{BuildFailed, WorkerLost}

// Recipient is a farm-wide address and the events it receives.
type Recipient struct {
	Events  Filter
	Address string
}

// ParseRecipient reads a --notify-email value: [EVENT[,EVENT...]=]ADDRESS.
func ParseRecipient(spec string) (Recipient, error) {
	filter, addr, err := ParseSpec("notify-email", spec, false)
	if err != nil {
		return Recipient{}, err
	}
	if err := CheckAddress(addr); err != nil {
		return Recipient{}, fmt.Errorf("--notify-email %q: %w", spec, err)
	}
	if filter == nil {
		filter = DefaultMailEvents
	}
	return Recipient{Events: filter, Address: addr}, nil
}

// CheckAddress accepts a bare address such as ops@example.com.
func CheckAddress(addr string) error {
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr {
		return fmt.Errorf("%q is not an e-mail address like name@example.com", addr)
	}
	return nil
}

// Mailer sends events as plain-text e-mail through one SMTP server: with
// STARTTLS whenever the server offers it, and authenticating (PLAIN) when
// given credentials, which it sends only over TLS or to a server on this
// host.
type Mailer struct {
	// Server is host:port.
	Server string
	From   string
	// Recipients get the farm-wide events they want; a delivery naming
	// its own addresses (a build's --notify) goes only to those.
	Recipients []Recipient
	// Username and Password, when set, authenticate.
	Username, Password string
	// RootCAs verifies the server's certificate for STARTTLS; nil uses
	// the system's.
	RootCAs *x509.CertPool
	Timeout time.Duration
}

// ReadCredentials reads an --smtp-auth-file: the username on the first
// line, the password on the second.
func ReadCredentials(path string) (user, password string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\r\n"), "\n")
	if len(lines) != 2 || lines[0] == "" {
		return "", "", fmt.Errorf("%s: want two lines, the SMTP username and then its password", path)
	}
	return strings.TrimRight(lines[0], "\r"), strings.TrimRight(lines[1], "\r"), nil
}

// Name implements Target.
func (m *Mailer) Name() string { return mailTarget }

// Kind implements Target.
func (m *Mailer) Kind() string { return "mail" }

// Wants implements Target: some farm-wide recipient wants event.
func (m *Mailer) Wants(event string) bool {
	for _, r := range m.Recipients {
		if r.Events.Wants(event) {
			return true
		}
	}
	return false
}

// Deliver sends one message to the delivery's addresses, or to the
// farm-wide recipients that want its event.
func (m *Mailer) Deliver(ctx context.Context, d *Delivery) error {
	to := d.To
	if len(to) == 0 {
		for _, r := range m.Recipients {
			if r.Events.Wants(d.Event.Event) {
				to = append(to, r.Address)
			}
		}
	}
	if len(to) == 0 {
		return nil // the recipients changed since it was queued
	}
	msg := Message(m.From, to, d.Event)
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := m.send(ctx, to, msg)
	var tp *textproto.Error
	if errors.As(err, &tp) && tp.Code >= 500 {
		return Permanent(fmt.Errorf("the mail server %s refused the message: %w", m.Server, err))
	}
	if err != nil {
		return fmt.Errorf("sending mail through %s: %w", m.Server, err)
	}
	return nil
}

func (m *Mailer) send(ctx context.Context, to []string, msg []byte) error {
	host, _, err := net.SplitHostPort(m.Server)
	if err != nil {
		return Permanent(err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", m.Server)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: m.RootCAs}); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if m.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return Permanent(errors.New("the server offers no AUTH, but --smtp-auth-file gives credentials"))
		}
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return fmt.Errorf("authenticating: %w", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return err
	}
	for _, addr := range to {
		if err := c.Rcpt(addr); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// Message renders ev as a complete plain-text e-mail.
func Message(from string, to []string, ev *Event) []byte {
	subject, body := Text(ev)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mimeHeader(subject))
	fmt.Fprintf(&b, "Date: %s\r\n", ev.Time.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%s@distbuild>\r\n", ev.ID, ev.Event)
	fmt.Fprintf(&b, "X-Distbuild-Event: %s\r\n", ev.Event)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}

func mimeHeader(s string) string {
	for _, r := range s {
		if r >= 0x80 {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// Text renders ev for people: a subject line and a body.
func Text(ev *Event) (subject, body string) {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if bd := ev.Build; bd != nil {
		outcome := map[string]string{BuildStarted: "started", BuildSucceeded: "succeeded", BuildFailed: "failed", BuildCancelled: "was cancelled"}[ev.Event]
		if outcome != "" {
			subject = fmt.Sprintf("distbuild: build %s %s (%s)", bd.ID, outcome, bd.System)
			line("Build %s %s.", bd.ID, outcome)
		} else {
			subject = fmt.Sprintf("distbuild: %s in build %s (%s)", ev.Event, bd.ID, bd.System)
			line("Event %s in build %s.", ev.Event, bd.ID)
		}
		line("")
		line("System:     %s", bd.System)
		line("Commit:     %s of %s", bd.Commit, bd.Repo)
		if bd.User != "" {
			line("Started by: %s", bd.User)
		}
		line("Steps:      %d of %d finished, %d failed", bd.FinishedSteps, bd.TotalSteps, bd.FailedSteps)
		if bd.Reason != "" {
			line("Reason:     %s", bd.Reason)
		}
		step := ev.Step
		if step == nil {
			step = bd.FailingStep
		}
		if step != nil {
			writeStep(&b, bd.ID, step)
		}
	} else if w := ev.Worker; w != nil {
		subject = fmt.Sprintf("distbuild: %s: %s", ev.Event, w.Name)
		line("Worker %s (%s, %d slots): %s.", w.Name, w.Arch, w.Slots, ev.Event)
		if w.Reason != "" {
			line("Reason: %s", w.Reason)
		}
	} else {
		subject = "distbuild: " + ev.Event
		line("Event %s.", ev.Event)
	}
	if ev.URL != "" {
		line("")
		line("Dashboard: %s", ev.URL)
	}
	line("")
	line("-- ")
	line("distbuild controller, event %s at %s", ev.ID, ev.Time.UTC().Format(time.RFC3339))
	return subject, b.String()
}

func writeStep(b *strings.Builder, buildID string, s *Step) {
	fmt.Fprintf(b, "\nStep %s", s.Name)
	if s.Worker != "" {
		fmt.Fprintf(b, " on worker %s", s.Worker)
	}
	if s.ExitCode != 0 {
		fmt.Fprintf(b, ", exit status %d", s.ExitCode)
	}
	b.WriteString("\n")
	if s.Reason != "" {
		fmt.Fprintf(b, "Reason: %s\n", s.Reason)
	}
	if s.MissingCacheKey != "" {
		fmt.Fprintf(b, "Missing artifact: %s (built again by %s)\n", s.MissingCacheKey, s.MissingStep)
	}
	if len(s.LogTail) > 0 {
		b.WriteString("\nThe last lines of its log:\n")
		for _, l := range s.LogTail {
			fmt.Fprintf(b, "    %s\n", l)
		}
	}
	if s.Log != "" {
		fmt.Fprintf(b, "\nThe complete log: initiator logs %s %s\n", buildID, s.Name)
	}
}
