// Package notifytest helps tests of notifications: it runs a real SMTP
// server in-process (go-smtp), so tests check what a mail server actually
// received rather than what a client meant to send, and reads what a hook
// recorded.
package notifytest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mailbox is an SMTP server on loopback that keeps every message.
type Mailbox struct {
	// Addr is the server's host:port.
	Addr string

	user, password string
	mu             sync.Mutex
	messages       []Message
}

// Message is one received message.
type Message struct {
	From string
	To   []string
	Data []byte
	// TLS says the message came over a STARTTLS connection, and User
	// who authenticated, if anyone did.
	TLS  bool
	User string
}

// Header and Text parse the message and decode its quoted-printable body.
func (m Message) Header(t testing.TB) mail.Header {
	t.Helper()
	hdr, _ := m.parse(t)
	return hdr
}

// Text returns the message's decoded body, with plain newlines.
func (m Message) Text(t testing.TB) string {
	t.Helper()
	_, text := m.parse(t)
	return text
}

func (m Message) parse(t testing.TB) (mail.Header, string) {
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		t.Fatalf("not a mail message: %v\n%s", err, m.Data)
	}
	text, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header, strings.ReplaceAll(string(text), "\r\n", "\n")
}

// Start serves SMTP until the test ends: with STARTTLS when tlsConfig is
// set, and AUTH PLAIN (over TLS only) accepting user and password when
// user is set.
func Start(t testing.TB, tlsConfig *tls.Config, user, password string) *Mailbox {
	t.Helper()
	b := &Mailbox{user: user, password: password}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{box: b, conn: c}, nil }))
	srv.Domain = "localhost"
	srv.TLSConfig = tlsConfig
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.Addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

// Messages returns what has arrived so far.
func (b *Mailbox) Messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.messages...)
}

type session struct {
	box  *Mailbox
	conn *smtp.Conn
	cur  Message
}

func (s *session) AuthMechanisms() []string {
	if s.box.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.box.user || pass != s.box.password {
			return errors.New("bad credentials")
		}
		s.cur.User = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.From = from; return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.cur.Data = data
	s.box.mu.Lock()
	s.box.messages = append(s.box.messages, s.cur)
	s.box.mu.Unlock()
	s.cur = Message{User: s.cur.User}
	return nil
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// ReadEvents reads a file a hook appended events to, one JSON document
// per line (e.g. `--hook '*=sh -c "cat >> FILE"'`), as E (notify.Event: a
// type parameter only because package notify's own tests use this
// package); a missing file has none.
func ReadEvents[E any](path string) []E {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []E
	for _, line := range strings.Split(string(data), "\n") {
		var ev E
		if json.Unmarshal([]byte(line), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}
