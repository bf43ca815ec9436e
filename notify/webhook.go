package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of a webhook's
// body, keyed by the shared secret, as GitHub's webhooks do: a receiver
// recomputes it to know the POST came from this farm and was not altered.
const SignatureHeader = "X-Distbuild-Signature"

// Webhook POSTs the events it wants as JSON. A 2xx answer delivers; a 4xx
// other than 408 or 429 says the receiver refuses the request itself, so
// it is not retried; anything else is retried.
type Webhook struct {
	// Spec is the flag value it came from; it names the target.
	Spec   string
	Events Filter
	URL    string
	// Secret keys the signature; empty sends none.
	Secret []byte
	Client *http.Client
}

// ParseWebhook reads a --webhook value: [EVENT[,EVENT...]=]URL.
func ParseWebhook(spec string, secret []byte, timeout time.Duration) (*Webhook, error) {
	filter, raw, err := ParseSpec("webhook", spec, false)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--webhook %q: want an http:// or https:// URL", spec)
	}
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	return &Webhook{Spec: spec, Events: filter, URL: raw, Secret: secret, Client: &http.Client{Timeout: timeout}}, nil
}

// Name implements Target.
func (w *Webhook) Name() string { return "webhook " + w.Spec }

// Kind implements Target.
func (w *Webhook) Kind() string { return "webhook" }

// Wants implements Target.
func (w *Webhook) Wants(event string) bool { return w.Events.Wants(event) }

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Deliver POSTs the event once.
func (w *Webhook) Deliver(ctx context.Context, d *Delivery) error {
	body, err := json.Marshal(d.Event)
	if err != nil {
		return Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "distbuild-controller")
	req.Header.Set("X-Distbuild-Event", d.Event.Event)
	req.Header.Set("X-Distbuild-Delivery", d.Event.ID)
	if len(w.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.Secret, body))
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		return Permanent(fmt.Errorf("webhook %s refused the event: %s", w.URL, resp.Status))
	default:
		return fmt.Errorf("webhook %s answered %s", w.URL, resp.Status)
	}
}
