package step

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/cache"
	"distbuild/worker/cache/cachetest"
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

// forgetful is a cache that has lost one blob its manifests still name.
type forgetful struct {
	*cachetest.Memory
	lost digest.Digest
}

func (f forgetful) DownloadWithProgress(ctx context.Context, d digest.Digest, path string, progress func()) error {
	if d == f.lost {
		return status.Errorf(codes.NotFound, "fetch %s: not found", d)
	}
	return f.Memory.DownloadWithProgress(ctx, d, path, progress)
}

// heldTrees is a treeCache counting the trees it gave out that were not
// released yet.
type heldTrees struct {
	treeCache
	mu   sync.Mutex
	held int
}

func (h *heldTrees) Tree(ctx context.Context, d digest.Digest, variant string, fill func(dir string) error) (string, func(), error) {
	dir, release, err := h.treeCache.Tree(ctx, d, variant, fill)
	if err != nil {
		return "", nil, err
	}
	h.mu.Lock()
	h.held++
	h.mu.Unlock()
	return dir, func() {
		release()
		h.mu.Lock()
		h.held--
		h.mu.Unlock()
	}, nil
}

func (h *heldTrees) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// Trees are unpacked side by side and ahead of the linking: one that
// cannot be had fails the staging as a missing input of its own chunk,
// and every tree the staging got is still released as the job ends.
func TestALinkedStagingMissingABlobBlamesItsChunkAndReleasesEveryTree(t *testing.T) {
	mem := cachetest.NewMemory()
	var keys []string
	var lost digest.Digest
	for i := range 8 {
		key := fmt.Sprintf("%064x", i+1)
		name := fmt.Sprintf("layer%d-bins", i)
		d := putBlob(t, mem, layer{fmt.Sprintf("d d%d 0755", i), fmt.Sprintf("f d%d/f 0644 %d", i, i)}.tarball(t))
		m := &pb.Manifest{CacheKey: key, StepName: name, Kind: pb.StepKind_STEP_KIND_CHUNK,
			Files: []*pb.ManifestFile{{Name: name, Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}}}
		if err := mem.PutManifest(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
		if i == 5 {
			lost = d
		}
	}
	w := newTestRunner(t, sandbox.None, func(c *Config) {
		local, err := cache.NewLocal(filepath.Join(c.WorkDir, "blobs"), 0, forgetful{mem, lost}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		c.Cache = local
	})
	held := &heldTrees{treeCache: w.cfg.Cache.(treeCache)}
	w.link = linker{r: w, trees: held}
	task := newTask(t, &pb.Job{Staging: keys})
	err := w.stage(context.Background(), task, w.link, t.TempDir())
	var missing *missingInputError
	if !errors.As(err, &missing) || missing.cacheKey != keys[5] {
		t.Errorf("staging gave %v; want the input %s reported missing", err, keys[5])
	}
	if held.count() == 0 {
		t.Error("no tree was held by the failed staging: the test stages nothing before the missing blob")
	}
	task.end()
	if n := held.count(); n != 0 {
		t.Errorf("%d trees are still held after the job ended", n)
	}
}
