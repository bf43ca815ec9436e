package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"distbuild/controller/statedb"
)

// controllerBinary builds the controller once for the test.
func controllerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "controller")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs the binary and returns its exit status and output.
func runBinary(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// zeroRootPage zeroes the root page of the builds bucket.
func zeroRootPage(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root, size int
	db.View(func(tx *bolt.Tx) error {
		root, size = int(tx.Bucket([]byte("builds")).Root()), db.Info().PageSize
		return nil
	})
	db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, size), int64(root*size)); err != nil {
		t.Fatal(err)
	}
}

func TestStateCommandsCheckBackUpAndRepair(t *testing.T) {
	bin := controllerBinary(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	db, err := statedb.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("builds"))
		if err != nil {
			return err
		}
		for i := range 10 { // enough that the bucket has pages of its own
			if err := b.Put([]byte{'x', byte(i)}, make([]byte, 1000)); err != nil {
				return err
			}
		}
		return b.Put([]byte("build-1"), []byte("saved before the damage"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	if code, out, errOut := runBinary(t, bin, "state", "check", "--state-dir", dir); code != 0 || !strings.Contains(out, "sound") {
		t.Errorf("check of a sound database: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := runBinary(t, bin, "state", "bogus", "--state-dir", dir); code != 2 {
		t.Errorf("an unknown subcommand: exit %d, want 2", code)
	}
	copyTo := filepath.Join(t.TempDir(), "copy.db")
	if code, _, errOut := runBinary(t, bin, "state", "backup", "--state-dir", dir, "--to", copyTo); code != 0 {
		t.Errorf("backup --to: exit %d\n%s", code, errOut)
	} else if _, err := statedb.CheckFile(copyTo); err != nil {
		t.Errorf("the backup written with --to: %v", err)
	}
	if code, out, errOut := runBinary(t, bin, "state", "backup", "--state-dir", dir); code != 0 || !strings.Contains(out, statedb.BackupDir(state)) {
		t.Errorf("a rolling backup: exit %d\n%s%s", code, out, errOut)
	}

	zeroRootPage(t, state)
	code, out, errOut := runBinary(t, bin, "state", "check", "--state-dir", dir)
	if code != 1 || !strings.Contains(errOut, state) || !strings.Contains(errOut, "controller state repair") || !strings.Contains(out, "backup ") {
		t.Errorf("check of a damaged database: exit %d, want 1, naming the file, the repair command and the backups\n%s%s", code, out, errOut)
	}
	code, _, errOut = runBinary(t, bin, "--state-dir", dir, "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, state) || !strings.Contains(errOut, "controller state repair") || strings.Contains(errOut, "goroutine ") {
		t.Errorf("the controller on a damaged database: exit %d, want 1 with a refusal naming the file and the repair command, no crash\n%s", code, errOut)
	}

	code, out, errOut = runBinary(t, bin, "state", "repair", "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "restored backup") || !strings.Contains(out, "kept the damaged file as") {
		t.Errorf("repair: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runBinary(t, bin, "state", "check", "--state-dir", dir); code != 0 {
		t.Errorf("check after the repair: exit %d\n%s%s", code, out, errOut)
	}
	db, err = bolt.Open(state, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("builds")); b == nil || string(b.Get([]byte("build-1"))) != "saved before the damage" {
			t.Error("the build saved before the damage is not in the repaired database")
		}
		return nil
	})
}

func TestTheControllerRefusesATruncatedStateDatabase(t *testing.T) {
	bin := controllerBinary(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	db, err := statedb.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.Truncate(state, 0); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runBinary(t, bin, "--state-dir", dir, "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, state+": is empty") || !strings.Contains(errOut, "controller state repair --state-dir "+dir) {
		t.Errorf("the controller on a truncated state database: exit %d, want 1 with a refusal naming the file and the repair command\n%s", code, errOut)
	}
	if code, _, errOut := runBinary(t, bin, "state", "check", "--state-dir", dir); code != 1 || !strings.Contains(errOut, "is empty") {
		t.Errorf("check of a truncated database: exit %d, want 1\n%s", code, errOut)
	}
}
