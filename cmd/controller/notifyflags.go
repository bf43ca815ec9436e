package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"

	"distbuild/notify"
)

// notifyFlags are the flags that tell hooks, webhooks and e-mail about
// farm events.
type notifyFlags struct {
	hooks, webhooks, emails                *[]string
	hookTimeout, retryFor                  *time.Duration
	concurrency                            *int
	secretFile                             *string
	smtpServer, smtpFrom, smtpAuth, smtpCA *string
	dashboardURL                           *string
}

func addNotifyFlags(fs *pflag.FlagSet) *notifyFlags {
	events := strings.Join(notify.EventNames, ", ")
	return &notifyFlags{
		hooks:        fs.StringArray("hook", nil, "run a command on farm events, as EVENT[,EVENT...]=COMMAND ('*' for all; repeatable), with the event's JSON on stdin; the command is split into words like a shell would but not run by one. Events: "+events),
		webhooks:     fs.StringArray("webhook", nil, "POST farm events as JSON to this URL, as [EVENT[,EVENT...]=]URL (default all events; repeatable), signed in the X-Distbuild-Signature header"),
		emails:       fs.StringArray("notify-email", nil, "e-mail this address on farm events, as [EVENT[,EVENT...]=]ADDRESS (default build-failed,worker-lost; repeatable); needs --smtp-server"),
		hookTimeout:  fs.Duration("hook-timeout", notify.DefaultHookTimeout, "longest one run of a hook, webhook POST or e-mail may take"),
		retryFor:     fs.Duration("notify-retry-for", notify.DefaultRetryFor, "how long after an event a failing hook, webhook or e-mail is retried (with backoff from 1s to 5m) before it is given up on with a log line"),
		concurrency:  fs.Int("notify-concurrency", notify.DefaultConcurrency, "hooks, webhooks and e-mails delivered at once"),
		secretFile:   fs.String("webhook-secret-file", "", "file whose contents key the HMAC-SHA256 signature of every webhook"),
		smtpServer:   fs.String("smtp-server", "", "HOST:PORT of the mail server for --notify-email and 'initiator build --notify' (STARTTLS is used when the server offers it)"),
		smtpFrom:     fs.String("smtp-from", "", "sender of notification e-mail (default distbuild@HOSTNAME)"),
		smtpAuth:     fs.String("smtp-auth-file", "", "file with the SMTP username on its first line and password on its second (sent only over TLS or to a server on this host)"),
		smtpCA:       fs.String("smtp-ca-file", "", "PEM CA certificates that verify the mail server's STARTTLS certificate (default: the system's)"),
		dashboardURL: fs.String("dashboard-url", "", "the dashboard's address as people reach it (e.g. http://controller.example:7879), for links in notifications"),
	}
}

// config builds the notification set-up, or nil when none is asked for.
func (f *notifyFlags) config(log hclog.Logger) (*notify.Config, error) {
	var targets []notify.Target
	for _, spec := range *f.hooks {
		h, err := notify.ParseHook(spec, *f.hookTimeout, log.Named("hook"))
		if err != nil {
			return nil, err
		}
		targets = append(targets, h)
	}
	var secret []byte
	if *f.secretFile != "" {
		data, err := os.ReadFile(*f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if secret = []byte(strings.TrimSpace(string(data))); len(secret) == 0 {
			return nil, fmt.Errorf("--webhook-secret-file %s is empty", *f.secretFile)
		}
	}
	for _, spec := range *f.webhooks {
		w, err := notify.ParseWebhook(spec, secret, *f.hookTimeout)
		if err != nil {
			return nil, err
		}
		targets = append(targets, w)
	}
	if len(*f.webhooks) > 0 && secret == nil {
		log.Warn("webhooks are sent unsigned: give --webhook-secret-file so receivers can tell they came from this farm")
	}
	m, err := f.mailer()
	if err != nil {
		return nil, err
	}
	if m != nil {
		targets = append(targets, m)
	}
	if len(targets) == 0 {
		return nil, nil
	}
	if *f.concurrency < 1 {
		return nil, errors.New("--notify-concurrency must be at least 1")
	}
	return &notify.Config{Targets: targets, Concurrency: *f.concurrency, RetryFor: *f.retryFor}, nil
}

func (f *notifyFlags) mailer() (*notify.Mailer, error) {
	if *f.smtpServer == "" {
		if len(*f.emails) > 0 {
			return nil, errors.New("--notify-email needs --smtp-server")
		}
		return nil, nil
	}
	m := &notify.Mailer{Server: *f.smtpServer, From: *f.smtpFrom, Timeout: *f.hookTimeout}
	if m.From == "" {
		host, _ := os.Hostname()
		m.From = "distbuild@" + host
	}
	if err := notify.CheckAddress(m.From); err != nil {
		return nil, fmt.Errorf("--smtp-from: %w", err)
	}
	for _, spec := range *f.emails {
		r, err := notify.ParseRecipient(spec)
		if err != nil {
			return nil, err
		}
		m.Recipients = append(m.Recipients, r)
	}
	if *f.smtpAuth != "" {
		user, pass, err := notify.ReadCredentials(*f.smtpAuth)
		if err != nil {
			return nil, fmt.Errorf("--smtp-auth-file: %w", err)
		}
		m.Username, m.Password = user, pass
	}
	if *f.smtpCA != "" {
		pem, err := os.ReadFile(*f.smtpCA)
		if err != nil {
			return nil, fmt.Errorf("--smtp-ca-file: %w", err)
		}
		m.RootCAs = x509.NewCertPool()
		if !m.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--smtp-ca-file %s holds no PEM certificate", *f.smtpCA)
		}
	}
	return m, nil
}
