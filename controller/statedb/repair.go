package statedb

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"distbuild/internal/atomicfile"
)

// RepairReport says what Repair did: what was wrong, where the damaged
// file went, and what the new database holds from which source.
type RepairReport struct {
	// Problem is what was wrong; empty when the database was sound and
	// nothing was done.
	Problem string
	// Aside is where the damaged file was moved ("" if there was none).
	Aside string
	// Backup is the backup the new database started from, "" when no
	// backup was good; SkippedBackups say why newer ones were not used.
	Backup         string
	BackupTxid     uint64
	BackupKeys     map[string]int
	SkippedBackups []string
	// Salvaged counts the keys read from the damaged file per top-level
	// bucket; SalvageError says why nothing could be read, and Lost which
	// buckets could be read only in part.
	Salvaged     map[string]int
	SalvageError string
	Lost         []string
	// Keys counts the keys of the repaired database per top-level bucket.
	Keys map[string]int
}

// Repair replaces a damaged or unexpectedly empty database at path with
// the best one that can be rebuilt: the newest backup that passes the
// check, with every key that can still be read from the damaged file
// written over it (the damaged file is normally newer than any backup, so
// its readable keys win; a key only the backup holds is kept, which can
// bring back a build the controller had since forgotten: it forgets it
// again). The damaged file is renamed aside, never deleted. A sound
// database is left alone.
func Repair(path string) (RepairReport, error) {
	var r RepairReport
	_, err := Check(path)
	var damaged *DamagedError
	if err == nil || !errors.As(err, &damaged) {
		return r, err
	}
	r.Problem = damaged.Problem

	tmp := path + ".repairing"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return r, err
	}
	defer os.Remove(tmp)
	if err := r.startFromBackup(path, tmp); err != nil {
		return r, err
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return r, fmt.Errorf("creating the repaired database %s: %w", tmp, err)
	}
	if err := r.salvage(path, db); err != nil {
		db.Close()
		return r, err
	}
	r.Keys = map[string]int{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			r.Keys[string(name)] = b.Stats().KeyN
			return nil
		})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return r, fmt.Errorf("the repaired database %s: %w", tmp, err)
	}
	if _, err := CheckFile(tmp); err != nil {
		return r, fmt.Errorf("the repaired database %s fails its own check, so nothing was replaced: %v", tmp, err)
	}

	if _, err := os.Stat(path); err == nil {
		r.Aside = path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(path, r.Aside); err != nil {
			return r, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return r, err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return r, err
	}
	return r, writeMarker(path)
}

// startFromBackup copies the newest sound backup to tmp, if there is one.
func (r *RepairReport) startFromBackup(path, tmp string) error {
	backups, err := Backups(path)
	if err != nil {
		return err
	}
	for _, b := range backups {
		h, err := CheckFile(b)
		if err != nil {
			r.SkippedBackups = append(r.SkippedBackups, fmt.Sprintf("%s: %v", b, err))
			continue
		}
		if err := copyFile(b, tmp); err != nil {
			return fmt.Errorf("restoring %s: %w", b, err)
		}
		r.Backup, r.BackupTxid, r.BackupKeys = b, h.Txid, h.Keys
		return nil
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// salvage writes every key it can read from the damaged file at path into
// db. bbolt panics on some damaged pages; each bucket is read under its
// own recover, so damage costs the rest of that bucket only. It reads a
// copy padded with zeros to the length the header claims, so pages lost
// off the end of a torn file read as damaged pages rather than as memory
// beyond the file (a SIGBUS). Errors reading are recorded in r; the error
// returned is a failure to write.
func (r *RepairReport) salvage(path string, db *bolt.DB) error {
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		r.SalvageError = "the file is missing or empty"
		return nil
	}
	padded := path + ".salvaging"
	if err := os.Remove(padded); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	defer os.Remove(padded)
	if err := copyFile(path, padded); err != nil {
		return err
	}
	if err := padToHighWaterMark(padded); err != nil {
		return err
	}
	var src *bolt.DB
	err := guard(func() (err error) {
		src, err = bolt.Open(padded, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
		return err
	})
	if err != nil {
		r.SalvageError = err.Error()
		return nil
	}
	defer src.Close()
	r.Salvaged = map[string]int{}
	var writeErr error
	err = guard(func() error {
		return src.View(func(stx *bolt.Tx) error {
			writeErr = db.Update(func(dtx *bolt.Tx) error { return r.copyBuckets(stx, dtx) })
			return nil
		})
	})
	if err != nil {
		r.SalvageError, r.Salvaged = err.Error(), nil
		return nil
	}
	if writeErr != nil {
		return fmt.Errorf("writing what was salvaged: %w", writeErr)
	}
	return nil
}

// padToHighWaterMark extends a bbolt file with zeros to the pages its
// newest valid meta page counts.
func padToHighWaterMark(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	m := readMetas(f)
	var need int64
	for _, mp := range m {
		if mp.problem == "" {
			need = max(need, int64(mp.pages)*int64(mp.pageSize))
		}
	}
	if need > fi.Size() {
		return f.Truncate(need)
	}
	return nil
}

func (r *RepairReport) copyBuckets(stx, dtx *bolt.Tx) (err error) {
	n := 0
	defer func() {
		if p := recover(); p != nil {
			r.Lost = append(r.Lost, fmt.Sprintf("the list of buckets, after %d: %v", n, p))
		}
	}()
	return stx.ForEach(func(name []byte, b *bolt.Bucket) error {
		n++
		into, err := dtx.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		return r.copyBucket(string(name), string(name), b, into)
	})
}

// copyBucket copies from into to, recursing into nested buckets; top
// names the top-level bucket whose count each key adds to.
func (r *RepairReport) copyBucket(top, label string, from, to *bolt.Bucket) (err error) {
	n := 0
	defer func() {
		if p := recover(); p != nil {
			r.Lost = append(r.Lost, fmt.Sprintf("%s: unreadable after %d keys: %v", label, n, p))
		}
	}()
	return from.ForEach(func(k, v []byte) error {
		if v == nil { // a nested bucket
			into, err := to.CreateBucketIfNotExists(k)
			if err != nil {
				return err
			}
			if err := r.copyBucket(top, label+"/"+string(k), from.Bucket(k), into); err != nil {
				return err
			}
		} else if err := to.Put(k, v); err != nil {
			return err
		}
		n++
		r.Salvaged[top]++
		return nil
	})
}

// String tells the operator what was kept and what was lost.
func (r RepairReport) String() string {
	if r.Problem == "" {
		return "the state database is sound: nothing to repair\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "damage: %s\n", r.Problem)
	if r.Aside != "" {
		fmt.Fprintf(&b, "kept the damaged file as %s (nothing was deleted)\n", r.Aside)
	}
	for _, s := range r.SkippedBackups {
		fmt.Fprintf(&b, "skipped a damaged backup: %s\n", s)
	}
	if r.Backup != "" {
		fmt.Fprintf(&b, "restored backup %s (transaction %d): %s\n", r.Backup, r.BackupTxid, KeyCounts(r.BackupKeys))
	} else {
		b.WriteString("no sound backup to restore\n")
	}
	switch {
	case r.SalvageError != "":
		fmt.Fprintf(&b, "nothing could be read from the damaged file (%s)\n", r.SalvageError)
	default:
		fmt.Fprintf(&b, "read from the damaged file, over the backup: %s\n", KeyCounts(r.Salvaged))
	}
	for _, l := range r.Lost {
		fmt.Fprintf(&b, "lost: %s\n", l)
	}
	fmt.Fprintf(&b, "the repaired database holds: %s\n", KeyCounts(r.Keys))
	switch {
	case r.SalvageError != "" && r.Backup != "":
		b.WriteString("lost: everything committed after the backup was taken\n")
	case r.SalvageError != "":
		b.WriteString("lost: every build and event: the controller starts empty\n")
	case len(r.Lost) > 0:
		b.WriteString("lost: the unreadable parts listed above, except what the backup held\n")
	}
	return b.String()
}

// KeyCounts renders per-bucket key counts in a stable order, for reports.
func KeyCounts(keys map[string]int) string {
	if len(keys) == 0 {
		return "nothing"
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(keys)) {
		parts = append(parts, fmt.Sprintf("%s %d keys", name, keys[name]))
	}
	return strings.Join(parts, ", ")
}
