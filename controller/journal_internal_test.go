package controller

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"distbuild/clock"
	pb "distbuild/proto/distbuild/v1"
)

// TestAForgottenBuildLeavesTheDatabaseAfterItsLastRecords forgets a build
// in the same breath as its last event: the deletion goes in the
// journal's batch after that event, so the build is gone (records and
// events) and the one kept is whole.
func TestAForgottenBuildLeavesTheDatabaseAfterItsLastRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open := func() *journal {
		j, err := openJournal(Config{StateFile: path, Clock: clock.System, Logger: hclog.NewNullLogger(), OnStateError: func(err error) { t.Error(err) }},
			prometheus.NewCounter(prometheus.CounterOpts{Name: "written"}))
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open()
	for _, id := range []string{"gone", "kept"} {
		j.enqueue(journalEntry{summary: &pb.BuildSummary{BuildId: id}})
		log := newEventLog(id, j, nil)
		log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_Accepted{Accepted: &pb.BuildAccepted{BuildId: id}}})
		log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_BuildFinished{BuildFinished: &pb.BuildFinished{}}})
	}
	j.forget([]string{"gone"})
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	j = open()
	defer j.close()
	stored, err := j.load()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].summary.BuildId != "kept" || len(stored[0].events) != 2 {
		t.Fatalf("after forgetting gone the database holds %v; want kept alone, with its two events", stored)
	}
}
