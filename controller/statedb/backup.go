package statedb

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"distbuild/internal/atomicfile"
)

// KeepBackups is how many rolling backups are kept: enough to step back
// past a backup taken of damage nobody had noticed yet, few enough that
// they cost little disk.
const KeepBackups = 3

// BackupDir is where the rolling backups of the database at path live.
func BackupDir(path string) string { return filepath.Join(filepath.Dir(path), "backups") }

// backupStem and backupExt frame a backup's name around its UTC time, so
// names sort by age.
func backupStem(path string) string {
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + "-"
}

const backupExt = ".db"

// Backups lists the rolling backups of the database at path, newest first.
func Backups(path string) ([]string, error) {
	entries, err := os.ReadDir(BackupDir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, backupStem(path)) && strings.HasSuffix(n, backupExt) && e.Type().IsRegular() {
			out = append(out, filepath.Join(BackupDir(path), n))
		}
	}
	slices.Reverse(out) // ReadDir sorts by name, and names sort by age
	return out, nil
}

// Backup writes a consistent copy of db to path: one read transaction
// copied with Tx.WriteTo while writers carry on, into a temporary file
// that is synced and renamed into place, so path never holds half a copy.
func Backup(db *bolt.DB, path string) error {
	err := db.View(func(tx *bolt.Tx) error {
		return atomicfile.WriteWith(path, 0o600, func(w io.Writer) error {
			_, err := tx.WriteTo(w)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("backing up %s to %s: %w", db.Path(), path, err)
	}
	return nil
}

// RollingBackup backs db up into BackupDir, named by the time, and removes
// all but the newest KeepBackups backups. It returns the new backup's path.
func RollingBackup(db *bolt.DB) (string, error) {
	path := db.Path()
	to := filepath.Join(BackupDir(path), backupStem(path)+time.Now().UTC().Format("20060102T150405.000000000Z")+backupExt)
	if err := Backup(db, to); err != nil {
		return "", err
	}
	backups, err := Backups(path)
	if err != nil {
		return to, err
	}
	for _, old := range backups[min(len(backups), KeepBackups):] {
		if err := os.Remove(old); err != nil {
			return to, err
		}
	}
	return to, nil
}

// BackupFile backs up the database at path, which must be sound, while no
// controller runs: to `to`, or as a rolling backup when to is "". It
// returns where the backup went.
func BackupFile(path, to string) (string, error) {
	if h, err := Check(path); err != nil {
		return "", err
	} else if h.New {
		return "", fmt.Errorf("%s: there is no state database to back up", path)
	}
	var out string
	err := guard(func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
		if err != nil {
			return err
		}
		defer db.Close()
		if to == "" {
			out, err = RollingBackup(db)
			return err
		}
		out = to
		return Backup(db, to)
	})
	return out, err
}
