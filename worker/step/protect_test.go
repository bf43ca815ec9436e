package step

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

// vandal is a build command that tries, one way after another, to change
// the staged etc/conf under $S: append, overwrite, truncate, chmod, delete,
// rename. Each may fail (in a subshell: a failed redirection ends the shell
// itself); the command succeeds anyway.
const vandal = `(echo appended >> $S/etc/conf); (echo overwritten > $S/etc/conf); (: > $S/etc/conf); ` +
	`busybox chmod 777 $S/etc/conf; busybox rm -f $S/etc/conf; busybox mv $S/etc/conf $S/etc/moved; true`

// remount tries to make the staging area writable and write through it:
// only a sandbox can stop that, since with --sandbox=none a build runs
// with the worker's own privileges.
const remount = `(busybox mount -o remount,rw,bind ${S:-/} && echo remounted >> $S/etc/conf); `

// witness is a build command that records what it sees of the staged
// etc/conf in its DESTDIR.
const witness = `busybox cat $S/etc/conf > $DESTDIR/seen; busybox stat -c %a $S/etc/conf >> $DESTDIR/seen`

func TestBuildsCannotChangeStagedTrees(t *testing.T) {
	busybox := readBusybox(t)
	for _, tc := range []struct {
		name      string
		mode      sandbox.Mode
		buildMode pb.BuildMode
		noMounts  bool // as a worker that may not mount
		// staging is how a command finds the staging area.
		staging string
	}{
		{"bwrap, staging mode", sandbox.Bwrap, pb.BuildMode_BUILD_MODE_STAGING, false, `S=`},
		{"bwrap, bootstrap mode", sandbox.Bwrap, pb.BuildMode_BUILD_MODE_BOOTSTRAP, false, `S=${PATH%%/usr/bin:*}`},
		{"none, read-only mount", sandbox.None, pb.BuildMode_BUILD_MODE_BOOTSTRAP, false, `S=${PATH%%/usr/bin:*}`},
		{"none, unpacked afresh where it may not mount", sandbox.None, pb.BuildMode_BUILD_MODE_BOOTSTRAP, true, `S=${PATH%%/usr/bin:*}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode == sandbox.Bwrap {
				if err := sandbox.Available(sandbox.Bwrap); err != nil {
					t.Skip("bubblewrap cannot run here:", err)
				}
			}
			w := newTestRunner(t, tc.mode)
			if tc.noMounts {
				w.mounts, w.overlays = false, false
			} else if tc.mode == sandbox.None && !w.mounts {
				t.Skip("this process may not mount (not root?): the read-only staging area cannot be tested")
			}
			key := strings.Repeat("7", 64)
			storeChunk(t, w, key, "base-bins", tarOf(t, map[string]string{
				"bin/busybox": string(busybox), "bin/sh": "->busybox", "etc/conf": "original\n",
			}))
			repo, commit := gitRepo(t, map[string]string{"f": ""})
			run := func(command string) *pb.Manifest {
				if tc.mode == sandbox.Bwrap && command == vandal {
					command = remount + command
				}
				spec := chunkSpec(repo, commit, tc.staging+"; "+command)
				spec.GetChunk().BuildMode = tc.buildMode
				spec.Staging = []string{key}
				res := runJob(t, w, spec)
				if res.failure != nil {
					t.Fatalf("job failed: %v", res.failure.Reason)
				}
				return res.manifest
			}
			run(vandal)
			seen := readTar(t, w, run(witness).Files[0].Digest)["seen"]
			if seen != "original\n755\n" {
				t.Errorf("a later step saw the staged file as %q, want it unchanged: %q", seen, "original\n755\n")
			}
			trees, _ := filepath.Glob(filepath.Join(w.cfg.WorkDir, "blobs", "trees", "*", "root", "etc", "conf"))
			if tc.noMounts {
				if len(trees) != 0 {
					t.Errorf("kept trees %v, want none: a worker that may not mount stages by unpacking afresh here", trees)
				}
				return
			}
			if len(trees) != 1 {
				t.Fatalf("kept trees holding etc/conf: %v, want one", trees)
			}
			info, err := os.Stat(trees[0])
			body, _ := os.ReadFile(trees[0])
			if err != nil || string(body) != "original\n" || info.Mode().Perm() != 0o755 {
				t.Errorf("the kept tree's etc/conf: %q, %v, %v; want it unchanged", body, info.Mode(), err)
			}
		})
	}
}

func TestSystemIntegrationChangesTheRootNotTheKeptTrees(t *testing.T) {
	busybox := readBusybox(t)
	for _, mode := range []sandbox.Mode{sandbox.None, sandbox.Bwrap} {
		t.Run(string(mode), func(t *testing.T) {
			if mode == sandbox.Bwrap {
				if err := sandbox.Available(sandbox.Bwrap); err != nil {
					t.Skip("bubblewrap cannot run here:", err)
				}
			}
			w := newTestRunner(t, mode)
			if !w.overlays {
				t.Skip("this process may not mount overlays (not root?): systems with integration commands are unpacked afresh")
			}
			key := strings.Repeat("8", 64)
			storeChunk(t, w, key, "base-bins", tarOf(t, map[string]string{
				"bin/busybox": string(busybox), "bin/sh": "->busybox", "etc/conf": "original\n", "etc/gone": "x",
			}))
			sys := &pb.SystemJob{
				Contents: []*pb.ChunkArtifact{{CacheKey: key, Artifact: "base-bins"}},
				Integration: []*pb.IntegrationCommands{{Name: "00", Commands: []string{
					"echo integrated >> /etc/conf && busybox chmod 600 /etc/conf && busybox rm /etc/gone",
				}}},
			}
			for i := range 2 {
				files, err := w.assembleSystem(context.Background(), newTask(t, &pb.Job{JobId: "j", Name: "sys"}), sys)
				if err != nil {
					t.Fatalf("assembly %d: %v", i, err)
				}
				root := readTar(t, w, files[0].Digest)
				if _, gone := root["etc/gone"]; root["etc/conf"] != "original\nintegrated\n" || gone {
					t.Errorf("assembly %d: the root's etc/conf %q, etc/gone there: %v; want the integration's changes, once", i, root["etc/conf"], gone)
				}
			}
			trees, _ := filepath.Glob(filepath.Join(w.cfg.WorkDir, "blobs", "trees", "*", "root", "etc"))
			if len(trees) != 1 {
				t.Fatalf("kept trees: %v, want one", trees)
			}
			body, _ := os.ReadFile(filepath.Join(trees[0], "conf"))
			info, err := os.Stat(filepath.Join(trees[0], "conf"))
			_, gone := os.Stat(filepath.Join(trees[0], "gone"))
			if err != nil || string(body) != "original\n" || info.Mode().Perm() != 0o755 || gone != nil {
				t.Errorf("the kept tree after integration: etc/conf %q %v, etc/gone %v; want it unchanged", body, info.Mode(), gone)
			}
		})
	}
}
