package notify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultHookTimeout bounds one run of a hook command.
const DefaultHookTimeout = time.Minute

// maxHookOutput bounds what of a hook's output reaches the log.
const maxHookOutput = 64 << 10

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
	argv, err := SplitCommand(command)
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

// Deliver runs the command once. On timeout or shutdown its whole process
// group is killed, so a shell's children do not outlive it.
func (h *Hook) Deliver(ctx context.Context, d *Delivery) error {
	body, err := json.Marshal(d.Event)
	if err != nil {
		return Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Argv[0], h.Argv[1:]...)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	cmd.Env = append(os.Environ(), "DISTBUILD_EVENT="+d.Event.Event, "DISTBUILD_EVENT_ID="+d.Event.ID)
	out := &cappedBuffer{max: maxHookOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	log := h.Logger.With("hook", h.Spec, "event", d.Event.Event, "event_id", d.Event.ID)
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		log.Info("hook output", "line", sc.Text())
	}
	if out.cut {
		log.Info("hook output cut short", "limit_bytes", maxHookOutput)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("hook %s timed out after %s", h.Argv[0], h.Timeout)
	case runErr != nil:
		return fmt.Errorf("hook %s: %w", h.Argv[0], runErr)
	}
	return nil
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	bytes.Buffer
	max int
	cut bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room < len(p) {
		c.cut = true
		c.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

// SplitCommand splits a command line into words as a POSIX shell would
// for plain words, single quotes, double quotes and backslashes, without
// expanding anything: a hook runs exactly the program it names.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case ch == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash ends the command")
			}
			i++
			word.WriteByte(s[i])
			inWord = true
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	if len(words) == 0 {
		return nil, errors.New("no command")
	}
	return words, nil
}
