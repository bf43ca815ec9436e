package step

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "distbuild/proto/distbuild/v1"
)

// The controller retries a step whose failure is FAILURE_KIND_SETUP on
// another worker and gives up on one that is FAILURE_KIND_BUILD, so the
// worker's whole judgement is here: only a build command that ran and
// exited non-zero is the build's fault. Everything else (fetching,
// staging, unpacking, uploading, a full disk, a stall, the step's timeout,
// the sandbox) is the farm's, and another worker may well succeed.

// commandError is a build command that ran and failed: the user's problem,
// never retried.
type commandError struct {
	phase    string
	command  string
	exitCode int
}

func (e *commandError) Error() string {
	return fmt.Sprintf("%s command exited with status %d: %s", e.phase, e.exitCode, firstLine(e.command))
}

// stallError is work stopped because it showed no sign of life: a command
// that wrote no output, or a fetch or transfer that moved no data, for
// limit. It is a setup failure: a hung mirror, cache or test suite on this
// worker says nothing about the same step elsewhere.
type stallError struct {
	what    string // e.g. `build command "make check"`
	lacking string // "output" or "progress"
	limit   time.Duration
}

func (e *stallError) Error() string {
	return fmt.Sprintf("%s made no %s for %s and was stopped as stalled", e.what, e.lacking, shortDuration(e.limit))
}

// stepTimeoutError is the controller's per-step time limit (Job.timeout)
// running out.
type stepTimeoutError struct{ limit time.Duration }

func (e *stepTimeoutError) Error() string {
	return "step exceeded its " + shortDuration(e.limit) + " timeout"
}

// missingInputError is an artifact the job must stage that the cache does
// not hold: evicted after the controller planned the build. The controller
// builds it again rather than count this against the step.
type missingInputError struct {
	cacheKey string
	err      error
}

func (e *missingInputError) Error() string {
	return fmt.Sprintf("the artifact cache no longer holds %s, which this step stages: %v", e.cacheKey, e.err)
}

func (e *missingInputError) Unwrap() error { return e.err }

// missingInput marks err as the artifact with cache key k being missing
// when the cache answered NotFound; other errors pass unchanged.
func missingInput(k string, err error) error {
	if err != nil && status.Code(err) == codes.NotFound {
		return &missingInputError{cacheKey: k, err: err}
	}
	return err
}

// failureOf says how a job that ended with err is reported. cause is
// context.Cause of the job's context, nil while the context is live: a job
// cancelled (the session's cause says why) or timed out is reported with
// that cause, since the errors of
// the work it interrupted ("context canceled", "signal: killed") say
// nothing useful.
func failureOf(err, cause error) *pb.JobFailure {
	f := &pb.JobFailure{Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: err.Error()}
	var ce *commandError
	var mi *missingInputError
	switch {
	case errors.As(err, &ce):
		// Checked first: a command that exited by itself failed on its
		// own, even if the job was cancelled a moment later.
		f.Kind, f.ExitCode = pb.FailureKind_FAILURE_KIND_BUILD, int32(ce.exitCode)
	case cause != nil:
		f.Reason = cause.Error()
	case errors.As(err, &mi):
		f.MissingCacheKeys = []string{mi.cacheKey}
	case diskFull(err):
		f.Reason = "the worker's disk is full: " + err.Error()
	}
	return f
}

// diskFull recognises running out of space. git and the cache client
// report errors as text, which loses the errno, so the system's message
// for ENOSPC counts as well as the errno itself.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) ||
		strings.Contains(strings.ToLower(err.Error()), syscall.ENOSPC.Error())
}

// shortDuration writes a duration as people do: "6h", "30m", "1h30m",
// "500ms", not "6h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i] + " ..."
		}
	}
	return s
}
