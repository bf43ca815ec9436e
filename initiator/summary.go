package initiator

import (
	"fmt"
	"strings"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

// The words list and status use for a build at a glance, so both show a
// build the same way.

// buildState is a build's state in lower case, e.g. "running".
func buildState(s pb.BuildState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "BUILD_STATE_"))
}

// stepState is a step's state in lower case, e.g. "finished".
func stepState(s pb.StepState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STEP_STATE_"))
}

// buildEnded reports whether a build is over for good, so that its
// duration is final rather than "so far".
func buildEnded(s pb.BuildState) bool {
	return s == pb.BuildState_BUILD_STATE_SUCCEEDED || s == pb.BuildState_BUILD_STATE_FAILED || s == pb.BuildState_BUILD_STATE_CANCELLED
}

// age is how long ago the build was accepted.
func age(b *pb.BuildSummary, now time.Time) string {
	if b.Created == nil {
		return "-"
	}
	return roughDuration(now.Sub(b.Created.AsTime()))
}

// took is how long the build ran: until it ended, or until now while it is
// live.
func took(b *pb.BuildSummary, now time.Time) string {
	if b.Created == nil {
		return "-"
	}
	end := now
	if b.Ended != nil {
		end = b.Ended.AsTime()
	}
	return roughDuration(end.Sub(b.Created.AsTime()))
}

// stepCounts is "finished/total", or "-" before the graph is resolved.
func stepCounts(b *pb.BuildSummary) string {
	if b.TotalSteps == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", b.FinishedSteps, b.TotalSteps)
}

// shortCommit is a commit abbreviated as git does in one-line logs, with a
// few more digits since a build farm sees many repositories' histories.
func shortCommit(c string) string { return c[:min(len(c), 12)] }

// roughDuration shows a duration as precisely as a person cares for: tenths
// of a second under a minute, seconds under an hour, minutes beyond. Clocks
// of different machines may disagree a little, so negative becomes zero.
func roughDuration(d time.Duration) string {
	switch d = max(d, 0); {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// oneLine flattens a multi-line reason (a step retried on several workers
// lists every attempt's) into a table cell.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}
