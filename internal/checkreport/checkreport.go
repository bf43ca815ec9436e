// Package checkreport puts reproducibility checks in words, the same way
// wherever a person reads them: the checking worker's log, the initiator's
// report and status, and the dashboard.
package checkreport

import (
	"fmt"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/tarball"
)

// Difference describes one difference in a line.
func Difference(d *pb.FileDifference) string {
	where := d.Artifact
	if d.Path != "" {
		where += ": " + d.Path
	}
	switch {
	case d.Path == "" && (d.What == tarball.OnlyCached || d.What == tarball.OnlyRebuilt):
		return fmt.Sprintf("%s: the whole artifact is %s", where, d.What)
	case d.What == tarball.OnlyCached || d.What == tarball.OnlyRebuilt:
		return fmt.Sprintf("%s: %s", where, d.What)
	}
	return fmt.Sprintf("%s: %s differs: %s (cached) vs %s (rebuilt)", where, d.What, d.Cached, d.Rebuilt)
}

// Count is how many differences a check found, listed or not.
func Count(res *pb.CheckResult) int {
	return len(res.GetDifferences()) + int(res.GetMoreDifferences())
}

// Summary sums a check up in a line.
func Summary(res *pb.CheckResult) string {
	switch res.GetOutcome() {
	case pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE:
		return "reproducible: the rebuild is identical"
	case pb.CheckOutcome_CHECK_OUTCOME_DIFFERS:
		return fmt.Sprintf("NOT reproducible: %d difference(s)", Count(res))
	case pb.CheckOutcome_CHECK_OUTCOME_NOT_CHECKED:
		return "not checked: " + res.GetReason()
	}
	return "unknown outcome"
}

// Word is the outcome in one word, for tables.
func Word(res *pb.CheckResult) string {
	switch res.GetOutcome() {
	case pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE:
		return "reproducible"
	case pb.CheckOutcome_CHECK_OUTCOME_DIFFERS:
		return "differs"
	case pb.CheckOutcome_CHECK_OUTCOME_NOT_CHECKED:
		return "not-checked"
	}
	return ""
}

// Compares reports whether a check compares a manifest file of this role:
// split artifacts and metadata, not the log or the provenance, which name
// the worker and the time. The checking worker and the controller (to
// tell whether a recorded check still applies) must agree.
func Compares(role pb.FileRole) bool {
	return role == pb.FileRole_FILE_ROLE_ARTIFACT || role == pb.FileRole_FILE_ROLE_METADATA
}
