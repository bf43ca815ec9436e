package step

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

func TestFailureOfBlamesTheBuildOnlyForCommandsThatExitedNonZero(t *testing.T) {
	// The causes the worker's session cancels jobs with.
	errCancelled := errors.New("cancelled")
	errStopping := errors.New("cancelled: the worker is stopping")
	const (
		build = pb.FailureKind_FAILURE_KIND_BUILD
		setup = pb.FailureKind_FAILURE_KIND_SETUP
	)
	command := &commandError{phase: "build", command: "make\nmake check", exitCode: 2}
	noSpace := &os.PathError{Op: "write", Path: "/w/blobs/.download-1", Err: syscall.ENOSPC}
	for _, c := range []struct {
		name     string
		err      error
		cause    error
		kind     pb.FailureKind
		reason   string
		exitCode int32
	}{
		{"command exited non-zero", command, nil, build, "build command exited with status 2: make ...", 2},
		{"wrapped command failure", fmt.Errorf("chunk: %w", command), nil, build, "chunk: build command exited with status 2: make ...", 2},
		{"command failed just before a cancel", command, errCancelled, build, "build command exited with status 2: make ...", 2},
		{"fetch failed", errors.New("cloning http://trove/x.git: fatal: repository not found"), nil, setup,
			"cloning http://trove/x.git: fatal: repository not found", 0},
		{"cache unavailable", status.Error(codes.Unavailable, "connection refused"), nil, setup,
			"rpc error: code = Unavailable desc = connection refused", 0},
		{"sandbox could not start", fmt.Errorf("build command %q: %w", "make", sandbox.ErrNoShell), nil, setup,
			`build command "make": ` + sandbox.ErrNoShell.Error(), 0},
		{"command stalled", &stallError{what: `check command "make check"`, lacking: "output", limit: 30 * time.Minute}, nil, setup,
			`check command "make check" made no output for 30m and was stopped as stalled`, 0},
		{"transfer stalled", fmt.Errorf("staging: %w", &stallError{what: "downloading x", lacking: "progress", limit: 10 * time.Minute}), nil, setup,
			"staging: downloading x made no progress for 10m and was stopped as stalled", 0},
		{"disk full, errno", fmt.Errorf("downloading x: %w", noSpace), nil, setup,
			"the worker's disk is full: downloading x: write /w/blobs/.download-1: no space left on device", 0},
		{"disk full, git's words", errors.New("checking out: fatal: write error: No space left on device"), nil, setup,
			"the worker's disk is full: checking out: fatal: write error: No space left on device", 0},
		{"cancelled by the controller", fmt.Errorf("fetching: %w", context.Canceled), errCancelled, setup, "cancelled", 0},
		{"disk full while cancelled", noSpace, errCancelled, setup, "cancelled", 0},
		{"worker stopping", sandbox.ErrCancelled, errStopping, setup, "cancelled: the worker is stopping", 0},
		{"step timeout", fmt.Errorf("build command: %w", sandbox.ErrCancelled), &stepTimeoutError{limit: 6 * time.Hour}, setup,
			"step exceeded its 6h timeout", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := failureOf(c.err, c.cause)
			if f.Kind != c.kind || f.Reason != c.reason || f.ExitCode != c.exitCode {
				t.Errorf("failureOf = %v %q exit %d; want %v %q exit %d", f.Kind, f.Reason, f.ExitCode, c.kind, c.reason, c.exitCode)
			}
		})
	}
}

func TestShortDurationDropsZeroUnits(t *testing.T) {
	for d, want := range map[time.Duration]string{
		6 * time.Hour:                         "6h",
		30 * time.Minute:                      "30m",
		90 * time.Minute:                      "1h30m",
		time.Hour + 30*time.Second:            "1h0m30s",
		30 * time.Second:                      "30s",
		500 * time.Millisecond:                "500ms",
		10*time.Minute + 500*time.Millisecond: "10m0.5s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q; want %q", d, got, want)
		}
	}
}
