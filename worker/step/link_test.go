package step

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

// layer is one artifact's entries, in tarball order: "d NAME MODE" a
// directory, "f NAME MODE BODY" a file, "l NAME TARGET" a symlink and
// "h NAME TARGET" a hard link.
type layer []string

func (l layer) tarball(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range l {
		f := strings.SplitN(e, " ", 4)
		var mode int64
		if f[0] == "d" || f[0] == "f" {
			fmt.Sscanf(f[2], "%o", &mode)
		}
		var err error
		switch f[0] {
		case "d":
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: f[1] + "/", Mode: mode, ModTime: mtime})
		case "f":
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f[1], Mode: mode, Size: int64(len(f[3])), ModTime: mtime})
			tw.Write([]byte(f[3]))
		case "l":
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: f[1], Linkname: f[2], Mode: 0o777})
		case "h":
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: f[1], Linkname: f[2]})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// describe lists everything under dir with its type, mode, content or
// target, and mtime (but a symlink's, which unpacking cannot set).
func describe(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		case info.Mode().IsRegular():
			body, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %q", body)
		}
		if info.Mode()&fs.ModeSymlink == 0 && rel != "." {
			fmt.Fprintf(&b, " %s", info.ModTime().UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestStagingByLinkingGivesWhatUnpackingGives(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []layer
		fails  bool
	}{
		{"a later file replaces an earlier one", []layer{
			{"d usr 0755", "f usr/a 0644 first", "f usr/b 0644 kept"},
			{"d usr 0755", "f usr/a 0600 second"},
		}, false},
		{"directories merge and the later mode wins", []layer{
			{"d usr 0755", "d usr/lib 0755", "f usr/lib/x 0644 x"},
			{"d usr 0700", "d usr/lib 0750", "f usr/lib/y 0755 y"},
		}, false},
		{"a symlink replaces a file and a file a symlink", []layer{
			{"d bin 0755", "f bin/sh 0755 shell", "l bin/cc gcc"},
			{"d bin 0755", "l bin/sh busybox", "f bin/cc 0755 compiler"},
		}, false},
		{"hard links within an artifact stay links", []layer{
			{"d bin 0755", "f bin/gzip 0755 gz", "h bin/gunzip bin/gzip"},
		}, false},
		{"a file over a directory is refused", []layer{
			{"d usr 0755", "d usr/lib 0755"},
			{"d usr 0755", "f usr/lib 0644 not-a-dir"},
		}, true},
		{"a directory over a file is refused", []layer{
			{"f lib 0644 a-file"},
			{"d lib 0755", "f lib/x 0644 x"},
		}, true},
		{"a directory over a symlink (merged /usr) is refused", []layer{
			{"d usr 0755", "d usr/lib 0755", "l lib usr/lib"},
			{"d lib 0755", "f lib/libc.so 0755 libc"},
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestRunner(t, sandbox.None)
			job := &pb.Job{}
			for i, l := range tc.layers {
				key := strings.Repeat(fmt.Sprint(i+1), 64)
				storeChunk(t, w, key, fmt.Sprintf("layer%d-bins", i), l.tarball(t))
				job.Staging = append(job.Staging, key)
			}
			unpacked, linked := t.TempDir(), t.TempDir()
			uerr := w.stage(context.Background(), newTask(t, job), unpacker{w}, unpacked)
			lerr := w.stage(context.Background(), newTask(t, job), w.link, linked)
			if (uerr != nil) != tc.fails || (lerr != nil) != tc.fails {
				t.Fatalf("unpacking: %v; linking: %v; want both to fail: %v", uerr, lerr, tc.fails)
			}
			if tc.fails {
				return
			}
			if u, l := describe(t, unpacked), describe(t, linked); u != l {
				t.Errorf("unpacked:\n%s\nlinked:\n%s", u, l)
			}
			if tc.name == "hard links within an artifact stay links" {
				a, _ := os.Stat(filepath.Join(linked, "bin/gzip"))
				b, _ := os.Stat(filepath.Join(linked, "bin/gunzip"))
				if !os.SameFile(a, b) {
					t.Error("bin/gunzip is no longer a hard link to bin/gzip")
				}
			}
		})
	}
}
