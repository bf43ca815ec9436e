package statedb_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"distbuild/controller/statedb"
)

// fill writes n builds, each a record in "builds" and a bucket of events
// in "events", with values big enough to spread over many pages.
func fill(t *testing.T, db *bolt.DB, from, n int) {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		builds, err := tx.CreateBucketIfNotExists([]byte("builds"))
		if err != nil {
			return err
		}
		events, err := tx.CreateBucketIfNotExists([]byte("events"))
		if err != nil {
			return err
		}
		for i := from; i < from+n; i++ {
			id := []byte(fmt.Sprintf("build-%04d", i))
			if err := builds.Put(id, bytes.Repeat([]byte{byte(i)}, 300)); err != nil {
				return err
			}
			b, err := events.CreateBucket(id)
			if err != nil {
				return err
			}
			for seq := range 5 {
				if err := b.Put([]byte{byte(seq)}, bytes.Repeat([]byte("e"), 200)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newDB makes a state database of n builds the way the controller does,
// and returns its path.
func newDB(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := statedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db, 0, n)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// builds lists the build records of a sound database.
func builds(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []string
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("builds")).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// pageTypes says what each page of a sound database holds ("meta",
// "leaf", "branch", "freelist" or "free").
func pageTypes(t *testing.T, path string) (types []string, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for id := 0; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			types = append(types, info.Type)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return types, db.Info().PageSize
}

func writeAt(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// wantRefused checks that err is a *DamagedError naming path and the way out.
func wantRefused(t *testing.T, err error, path, problem string) {
	t.Helper()
	var damaged *statedb.DamagedError
	if !errors.As(err, &damaged) {
		t.Fatalf("opened a damaged database: got %v, want a DamagedError about %q", err, problem)
	}
	for _, want := range []string{path, problem, "controller state repair --state-dir " + filepath.Dir(path)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}
}

func TestAFreshStateDirectoryStartsEmpty(t *testing.T) {
	for name, prepare := range map[string]func(path string) error{
		"no file":          func(string) error { return nil },
		"zero-length file": func(path string) error { return os.WriteFile(path, nil, 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := prepare(path); err != nil {
				t.Fatal(err)
			}
			if h, err := statedb.Check(path); err != nil || !h.New {
				t.Fatalf("check of a fresh directory: %+v, %v; want new", h, err)
			}
			db, err := statedb.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		})
	}
}

func TestAMissingOrTruncatedDatabaseIsRefusedWhereOneExistedBefore(t *testing.T) {
	for name, damage := range map[string]func(path string) error{
		"truncated": func(path string) error { return os.Truncate(path, 0) },
		"removed":   os.Remove,
	} {
		t.Run(name, func(t *testing.T) {
			path := newDB(t, 3)
			if err := damage(path); err != nil {
				t.Fatal(err)
			}
			_, err := statedb.Open(path)
			wantRefused(t, err, path, "shows the controller ran here before")
		})
	}
	t.Run("only a backup shows it", func(t *testing.T) {
		path := newDB(t, 3)
		if _, err := statedb.BackupFile(path, ""); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{path, path + ".created"} {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		_, err := statedb.Open(path)
		wantRefused(t, err, path, "backups")
	})
}

// Every page of a database is zeroed in turn, as a disk losing a block
// would: no panic may escape, and every page in use must be noticed.
func TestAZeroedPageIsRefusedWithoutAPanic(t *testing.T) {
	sound := newDB(t, 40)
	types, pageSize := pageTypes(t, sound)
	data, err := os.ReadFile(sound)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for id, typ := range types {
		path := filepath.Join(t.TempDir(), "state.db")
		damaged := bytes.Clone(data)
		clear(damaged[id*pageSize : (id+1)*pageSize])
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := statedb.Open(path)
		if err == nil {
			db.Close()
			if typ != "free" {
				t.Errorf("page %d (%s) zeroed: the database opened", id, typ)
			}
			continue
		}
		refused++
		wantRefused(t, err, path, "")
	}
	if refused < len(types)/2 {
		t.Errorf("only %d of %d zeroed pages were noticed", refused, len(types))
	}
}

// bbolt itself opens a database whose newest meta page is garbage as of
// the transaction before, silently; the check must not.
func TestGarbageInAMetaPageIsDetected(t *testing.T) {
	path := newDB(t, 3)
	before, err := statedb.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	_, pageSize := pageTypes(t, path)
	for _, page := range []uint64{before.Txid % 2, (before.Txid + 1) % 2} {
		t.Run(fmt.Sprintf("page %d", page), func(t *testing.T) {
			damaged := filepath.Join(t.TempDir(), "state.db")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(damaged, data, 0o600); err != nil {
				t.Fatal(err)
			}
			// The txid and checksum fields of the meta page.
			writeAt(t, damaged, int64(page)*int64(pageSize)+16+48, []byte("garbage garbage!"))

			if page == before.Txid%2 {
				db, err := bolt.Open(damaged, 0o600, &bolt.Options{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				tx, err := db.Begin(false)
				if err != nil {
					t.Fatal(err)
				}
				if uint64(tx.ID()) != before.Txid-1 {
					t.Errorf("bbolt opened the damaged file at transaction %d; this test expects its silent rollback to %d", tx.ID(), before.Txid-1)
				}
				tx.Rollback()
				db.Close()
			}
			_, err = statedb.Open(damaged)
			wantRefused(t, err, damaged, fmt.Sprintf("meta page %d is damaged (checksum mismatch)", page))
		})
	}
}

func TestRollingBackupsKeepTheNewestFew(t *testing.T) {
	path := newDB(t, 3)
	db, err := statedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var made []string
	for i := range statedb.KeepBackups + 2 {
		fill(t, db, 10+i, 1)
		b, err := statedb.RollingBackup(db)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, b)
	}
	kept, err := statedb.Backups(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != statedb.KeepBackups || kept[0] != made[len(made)-1] || kept[len(kept)-1] != made[2] {
		t.Fatalf("kept %v after making %v; want the newest %d, newest first", kept, made, statedb.KeepBackups)
	}
	if got := builds(t, kept[0]); len(got) != 3+statedb.KeepBackups+2 {
		t.Errorf("the newest backup holds %d builds, want %d", len(got), 3+statedb.KeepBackups+2)
	}
	entries, _ := os.ReadDir(statedb.BackupDir(path))
	if len(entries) != statedb.KeepBackups {
		t.Errorf("the backup directory holds %d entries, want %d (no temporaries)", len(entries), statedb.KeepBackups)
	}
}

func TestRepairRestoresTheBackupAndWhatTheDamagedFileStillHolds(t *testing.T) {
	path := newDB(t, 20)
	if _, err := statedb.BackupFile(path, ""); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db, 100, 1) // after the backup: only the damaged file has it
	db.Close()
	// Zero the last leaf of the builds bucket: the builds before it can
	// still be read, and the backup holds the rest.
	_, pageSize := pageTypes(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root int
	db.View(func(tx *bolt.Tx) error { root = int(tx.Bucket([]byte("builds")).Root()); return nil })
	db.Close()
	branch := data[root*pageSize:]
	if binary.NativeEndian.Uint16(branch[8:]) != 0x01 {
		t.Fatalf("the builds bucket's root page %d is not a branch page", root)
	}
	last := int(binary.NativeEndian.Uint16(branch[10:])) - 1
	zeroed := int(binary.NativeEndian.Uint64(branch[16+16*last+8:]))
	writeAt(t, path, int64(zeroed*pageSize), make([]byte, pageSize))
	damaged, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	r, err := statedb.Repair(path)
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, r)
	}
	report := r.String()
	if r.Backup == "" || !strings.Contains(report, "restored backup") || !strings.Contains(report, "kept the damaged file as") {
		t.Errorf("the report does not tell what was restored and kept:\n%s", report)
	}
	if len(r.Lost) == 0 || r.Salvaged["builds"] == 0 || r.Salvaged["events"] < 21*5 {
		t.Errorf("the zeroed page %d was not reported lost (%v), or what is around it was not all read (%v; want every event)", zeroed, r.Lost, r.Salvaged)
	}
	if _, err := statedb.Check(path); err != nil {
		t.Fatalf("the repaired database: %v", err)
	}
	got := builds(t, path)
	if len(got) < 20 {
		t.Errorf("the repaired database holds %d builds, want the backup's 20 at least: %v", len(got), got)
	}
	if aside, err := os.ReadFile(r.Aside); err != nil || !bytes.Equal(aside, damaged) {
		t.Errorf("the damaged file was not kept as it was at %q: %v", r.Aside, err)
	}
	if again, err := statedb.Repair(path); err != nil || again.Problem != "" {
		t.Errorf("repairing a sound database: %+v, %v; want nothing done", again, err)
	}
}

func TestRepairSalvagesANewerDatabaseThanItsBackup(t *testing.T) {
	path := newDB(t, 5)
	if _, err := statedb.BackupFile(path, ""); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db, 5, 5) // after the backup
	fill(t, db, 10, 1)
	db.Close()
	h, err := statedb.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	_, pageSize := pageTypes(t, path)
	// Garbage in the newest meta page: the file still reads as of the
	// transaction before it, which holds builds the backup lacks.
	writeAt(t, path, int64(h.Txid%2)*int64(pageSize)+16+48, []byte("garbage garbage!"))

	r, err := statedb.Repair(path)
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, r)
	}
	if got := builds(t, path); len(got) != 10 {
		t.Errorf("after repair %d builds, want the 10 the previous transaction held:\n%s", len(got), r)
	}
	if !strings.Contains(r.String(), "read from the damaged file, over the backup: builds 10 keys") {
		t.Errorf("the report does not say what was read from the damaged file:\n%s", r)
	}
}

// Random damage, as the adversarial run did it: whatever it hits, no bbolt
// panic escapes, a database that opens reads completely (the check missed
// nothing the controller would trip on), and a refused one is repaired into
// one that passes the check.
func TestRandomDamageNeverPanicsAndIsRepaired(t *testing.T) {
	sound := newDB(t, 40)
	data, err := os.ReadFile(sound)
	if err != nil {
		t.Fatal(err)
	}
	_, pageSize := pageTypes(t, sound)
	rng := rand.New(rand.NewPCG(1, 2))
	refused := 0
	for i := range 100 {
		damaged := bytes.Clone(data)
		page := rng.IntN(len(data) / pageSize)
		switch i % 3 {
		case 0: // a zeroed page
			clear(damaged[page*pageSize : (page+1)*pageSize])
		case 1: // garbage somewhere in a page
			off := page*pageSize + rng.IntN(pageSize-64)
			for j := range 64 {
				damaged[off+j] = byte(rng.Uint32())
			}
		case 2: // a torn file
			damaged = damaged[:page*pageSize+rng.IntN(pageSize)]
		}
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".created", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := statedb.Open(path)
		if err == nil {
			// The controller reads everything at start: it must not panic.
			err = db.View(func(tx *bolt.Tx) error {
				return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
					return b.ForEachBucket(func(k []byte) error {
						return b.Bucket(k).ForEach(func(_, _ []byte) error { return nil })
					})
				})
			})
			db.Close()
			if err != nil {
				t.Errorf("damage %d opened but does not read: %v", i, err)
			}
			continue
		}
		refused++
		wantRefused(t, err, path, "")
		r, err := statedb.Repair(path)
		if err != nil {
			t.Errorf("damage %d: repair failed: %v\n%s", i, err, r)
			continue
		}
		if _, err := statedb.Check(path); err != nil {
			t.Errorf("damage %d: the repaired database: %v", i, err)
		}
	}
	if refused < 50 {
		t.Errorf("only %d of 100 random damages were refused", refused)
	}
}
