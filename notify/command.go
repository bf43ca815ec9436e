package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"distbuild/internal/cmdline"
)

// DefaultHookTimeout bounds one run of a hook command.
const DefaultHookTimeout = time.Minute

// Hook runs a command for the events it wants, with the event's JSON on
// stdin and DISTBUILD_EVENT and DISTBUILD_EVENT_ID in its environment. It
// is not run through a shell (write `sh -c '...'` for one); a non-zero
// exit, a failure to start or a timeout is a failed delivery. Its output
// goes to the controller's log.
type Hook struct {
	// Spec is the flag value it came from; it names the target.
	Spec    string
	Events  Filter
	Argv    []string
	Timeout time.Duration
	Logger  hclog.Logger
}

// ParseHook reads a --hook value: EVENT[,EVENT...]=COMMAND.
func ParseHook(spec string, timeout time.Duration, log hclog.Logger) (*Hook, error) {
	filter, command, err := ParseSpec("hook", spec, true)
	if err != nil {
		return nil, err
	}
	argv, err := cmdline.Split(command)
	if err != nil {
		return nil, fmt.Errorf("--hook %q: %w", spec, err)
	}
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Hook{Spec: spec, Events: filter, Argv: argv, Timeout: timeout, Logger: log}, nil
}

// Name implements Target.
func (h *Hook) Name() string { return "hook " + h.Spec }

// Kind implements Target.
func (h *Hook) Kind() string { return "hook" }

// Wants implements Target.
func (h *Hook) Wants(event string) bool { return h.Events.Wants(event) }

// Deliver runs the command once.
func (h *Hook) Deliver(ctx context.Context, d *Delivery) error {
	body, err := json.Marshal(d.Event)
	if err != nil {
		return Permanent(err)
	}
	env := []string{"DISTBUILD_EVENT=" + d.Event.Event, "DISTBUILD_EVENT_ID=" + d.Event.ID}
	return cmdline.Run(ctx, h.Argv, append(body, '\n'), env, h.Timeout, h.Logger.With("hook", h.Spec, "event", d.Event.Event, "event_id", d.Event.ID))
}
