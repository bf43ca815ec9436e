package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The events a target can ask for, as written after --hook and friends.
const (
	BuildStarted   = "build-started"
	BuildSucceeded = "build-succeeded"
	BuildFailed    = "build-failed"
	BuildCancelled = "build-cancelled"
	StepFailed     = "step-failed"
	StepRetried    = "step-retried"
	WorkerJoined   = "worker-joined"
	WorkerLost     = "worker-lost"
	MissingInput   = "missing-input"
)

// EventNames lists every event, for help texts and validation.
var EventNames = []string{BuildStarted, BuildSucceeded, BuildFailed, BuildCancelled, StepFailed, StepRetried, WorkerJoined, WorkerLost, MissingInput}

// Event is the JSON document every target receives: a hook on stdin, a
// webhook as its body, an e-mail rendered as text. Fields that do not
// apply to an event are left out.
type Event struct {
	// ID is unique per event; a receiver that sees it twice (delivery is
	// at least once) can drop the repeat.
	ID string `json:"id"`
	// Event is one of EventNames.
	Event string    `json:"event"`
	Time  time.Time `json:"time"`
	// Build is set for build and step events.
	Build *Build `json:"build,omitempty"`
	// Step is set for step events and missing-input.
	Step *Step `json:"step,omitempty"`
	// Worker is set for worker events.
	Worker *Worker `json:"worker,omitempty"`
	// URL is the event's page on the controller's dashboard, when the
	// controller knows its public address (--dashboard-url).
	URL string `json:"url,omitempty"`
}

// Build describes the build an event belongs to.
type Build struct {
	ID     string `json:"id"`
	Repo   string `json:"repo"`
	Commit string `json:"commit"`
	// System is the morphology built, e.g. systems/base-system-x86_64.morph.
	System     string   `json:"system"`
	Components []string `json:"components,omitempty"`
	// User is who asked for it, when the controller authenticates users.
	User  string `json:"user,omitempty"`
	State string `json:"state"`
	// Reason says why a build failed or was cancelled.
	Reason        string     `json:"reason,omitempty"`
	TotalSteps    int        `json:"total_steps"`
	FinishedSteps int        `json:"finished_steps"`
	FailedSteps   int        `json:"failed_steps"`
	Created       time.Time  `json:"created"`
	Ended         *time.Time `json:"ended,omitempty"`
	// FailingStep is the step that made a failed build fail, with the
	// last lines of its log.
	FailingStep *Step `json:"failing_step,omitempty"`
}

// Step describes a step an event is about.
type Step struct {
	Name     string `json:"name"`
	CacheKey string `json:"cache_key"`
	Worker   string `json:"worker,omitempty"`
	// Kind is "build" when the step's commands failed, "setup" when the
	// farm did.
	Kind      string `json:"kind,omitempty"`
	Reason    string `json:"reason,omitempty"`
	ExitCode  int    `json:"exit_code,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
	WillRetry bool   `json:"will_retry,omitempty"`
	// Log is the digest of the attempt's complete log in the artifact
	// cache (`initiator logs` fetches it).
	Log string `json:"log,omitempty"`
	// LogTail is the last lines the step printed.
	LogTail []string `json:"log_tail,omitempty"`
	// MissingCacheKey is, for missing-input, the artifact staging did
	// not find, and MissingStep the step that builds it again.
	MissingCacheKey string `json:"missing_cache_key,omitempty"`
	MissingStep     string `json:"missing_step,omitempty"`
}

// Worker describes the worker an event is about.
type Worker struct {
	Name  string            `json:"name"`
	Arch  string            `json:"arch,omitempty"`
	Slots int               `json:"slots,omitempty"`
	Tags  map[string]string `json:"tags,omitempty"`
	// Reason says why a worker was lost.
	Reason string `json:"reason,omitempty"`
}

// Filter is the set of events a target wants; empty wants every event.
type Filter []string

// Wants reports whether the filter takes event.
func (f Filter) Wants(event string) bool { return len(f) == 0 || slices.Contains(f, event) }

// ParseSpec splits a flag value of the form [EVENT[,EVENT...]=]VALUE, as
// --hook, --webhook and --notify-email take it, into its filter and value.
// A value alone (a URL may hold '=' itself) wants every event, unless
// requireFilter says a filter is needed. Unknown event names are errors.
func ParseSpec(flag, spec string, requireFilter bool) (Filter, string, error) {
	var filter Filter
	value := spec
	if i := strings.IndexByte(spec, '='); i > 0 && isEventList(spec[:i]) {
		value = spec[i+1:]
		if spec[:i] != "*" {
			for _, name := range strings.Split(spec[:i], ",") {
				if !slices.Contains(EventNames, name) {
					return nil, "", fmt.Errorf("--%s %q: unknown event %q (events: %s, or * for all)", flag, spec, name, strings.Join(EventNames, ", "))
				}
				filter = append(filter, name)
			}
		}
	} else if requireFilter {
		return nil, "", fmt.Errorf("--%s %q: want EVENT[,EVENT...]=VALUE (events: %s, or * for all)", flag, spec, strings.Join(EventNames, ", "))
	}
	if strings.TrimSpace(value) == "" {
		return nil, "", fmt.Errorf("--%s %q: nothing after the events", flag, spec)
	}
	return filter, value, nil
}

// isEventList reports whether s looks like "a-b,c-d" or "*": letters,
// dashes and commas only, so a URL's "https://x/?a=b" is not taken for one.
func isEventList(s string) bool {
	if s == "*" {
		return true
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '-' && r != ',' {
			return false
		}
	}
	return true
}
