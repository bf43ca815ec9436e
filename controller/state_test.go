package controller_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"distbuild/controller"
	"distbuild/controller/statedb"
	pb "distbuild/proto/distbuild/v1"
)

// backupHolds tells whether a backup file holds the build's record.
func backupHolds(t *testing.T, backup, id string) bool {
	t.Helper()
	db, err := bolt.Open(backup, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("opening backup %s: %v", backup, err)
	}
	defer db.Close()
	found := false
	db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket([]byte("builds")).Get([]byte(id)) != nil
		return nil
	})
	return found
}

func TestARunningControllerBacksUpItsState(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.cfg.StateBackupInterval = 20 * time.Millisecond
	f.restartController()
	f.worker("w1", 4)
	id := f.start("systems/test.morph").wait()[0].GetAccepted().GetBuildId()

	deadline := time.Now().Add(10 * time.Second)
	for {
		backups, err := statedb.Backups(f.cfg.StateFile)
		if err != nil {
			t.Fatal(err)
		}
		if len(backups) > statedb.KeepBackups {
			t.Fatalf("%d backups kept, want at most %d", len(backups), statedb.KeepBackups)
		}
		if len(backups) > 0 && backupHolds(t, backups[0], id) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backup written while running holds build %s (backups: %v)", id, backups)
		}
		f.clock.Advance(f.cfg.StateBackupInterval)
		time.Sleep(time.Millisecond)
	}
}

func TestATruncatedStateDatabaseIsRefusedAndRepairListsItsBuildsAgain(t *testing.T) {
	f := startFarm(t, 10*time.Second)
	f.worker("w1", 4)
	id := f.start("systems/test.morph").wait()[0].GetAccepted().GetBuildId()
	f.stopController() // a clean stop writes a backup
	if err := os.Truncate(f.cfg.StateFile, 0); err != nil {
		t.Fatal(err)
	}

	_, err := controller.New(f.cfg)
	if err == nil || !strings.Contains(err.Error(), f.cfg.StateFile) || !strings.Contains(err.Error(), "controller state repair") {
		t.Errorf("a controller on a truncated state database: %v; want a refusal naming the file and 'controller state repair'", err)
	}
	r, err := statedb.Repair(f.cfg.StateFile)
	if err != nil {
		t.Errorf("repair: %v\n%s", err, r)
	}
	f.serve()
	list, err := f.builds.List(context.Background(), &pb.ListRequest{IncludeEnded: true})
	if err != nil || len(list.Builds) != 1 || list.Builds[0].BuildId != id || list.Builds[0].State != pb.BuildState_BUILD_STATE_SUCCEEDED {
		t.Errorf("builds after the repair: %v, %v; want %s, succeeded\n%s", list, err, id, r)
	}
}
