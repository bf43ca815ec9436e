package service

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"distbuild/clock"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stall opens an upload declaring a blob of size bytes, sends one byte of
// it and then nothing more, holding the stream open as a hostile or stuck
// client would. It returns once the server has taken that byte, with a
// function that cancels the stream.
func (f *fixture) stall(t *testing.T, size int64) (distbuildv1.ArtifactCacheService_WriteClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := f.client.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	declared := &distbuildv1.Digest{Hash: strings.Repeat("ab", 32), SizeBytes: size}
	if err := stream.Send(&distbuildv1.WriteRequest{Digest: declared, Data: []byte{0}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled upload's first byte to reach its temporary file", func() bool {
		names, _ := os.ReadDir(filepath.Join(f.dir, "tmp"))
		for _, n := range names {
			if info, err := n.Info(); err == nil && info.Size() == 1 {
				return true
			}
		}
		return false
	})
	return stream, cancel
}

// waitFor polls cond until it holds, failing the test if it never does.
// It waits for the server to catch up with what the test did, and asserts
// nothing about how long that takes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAStalledUploadDeclaringTheWholeCacheTakesNothingFromOthers(t *testing.T) {
	const maxSize = 4 << 20
	f := serve(t, maxSize, nil)
	ctx := context.Background()
	// 3 of the 4 MiB are in use: an artifact of two blobs and a lone blob.
	a := f.upload(t, bytes.Repeat([]byte("a"), 1<<20))
	b := f.upload(t, bytes.Repeat([]byte("b"), 1<<20))
	if _, err := f.client.PutManifest(ctx, &distbuildv1.PutManifestRequest{Manifest: manifest(key(1), a, b)}); err != nil {
		t.Fatal(err)
	}
	lone := f.upload(t, bytes.Repeat([]byte("l"), 1<<20))

	stalled, _ := f.stall(t, maxSize)

	// While it stalls, other uploads use the free room as usual.
	var others []digest.Digest
	for i := range 4 {
		others = append(others, f.upload(t, bytes.Repeat([]byte{byte('0' + i)}, 200<<10)))
	}
	stored := append([]digest.Digest{a, b, lone}, others...)
	k, _ := digest.ParseCacheKey(key(1))
	missing, missingKeys := f.store.FindMissing(stored, []digest.CacheKey{k})
	if len(missing) != 0 || len(missingKeys) != 0 {
		t.Errorf("with an upload of the cache's size stalled after 1 byte, blobs %v and manifests %v went missing", missing, missingKeys)
	}
	if st := f.store.Stats(); st.ReservedBytes != 1 {
		t.Errorf("the stalled upload holds %d bytes of room, want the 1 byte it sent", st.ReservedBytes)
	}
	// The stalled stream is still open: the server has not answered it.
	if err := stalled.Send(&distbuildv1.WriteRequest{Data: []byte{0}}); err != nil {
		t.Errorf("the stalled upload was ended: %v", err)
	}
}

func TestAnIdleUploadIsEndedAndItsRoomReleased(t *testing.T) {
	const maxSize = 4 << 20
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	f := serveWith(t, maxSize, Options{Clock: clk, UploadIdleTimeout: time.Minute})
	kept := f.upload(t, []byte("stored before"))

	stalled, cancel := f.stall(t, maxSize)
	clk.Advance(time.Minute)
	// Should the server never end the stream, the test cancels it (code
	// Canceled) rather than hang.
	defer time.AfterFunc(30*time.Second, cancel).Stop()
	err := stalled.RecvMsg(&distbuildv1.WriteResponse{})
	wantCode(t, "an upload idle for the idle limit", err, codes.DeadlineExceeded)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "--upload-idle-timeout") || !strings.Contains(msg, "1m0s") {
		t.Errorf("error %q does not name the idle limit", msg)
	}
	// The room is back before the client hears that the upload ended.
	if st := f.store.Stats(); st.ReservedBytes != 0 || st.Blobs != 1 {
		t.Errorf("after the idle upload ended: %+v, want nothing reserved and the one stored blob", st)
	}
	if names, _ := os.ReadDir(filepath.Join(f.dir, "tmp")); len(names) != 0 {
		t.Errorf("the ended upload left %d temporary files", len(names))
	}
	if missing, _ := f.store.FindMissing([]digest.Digest{kept}, nil); len(missing) != 0 {
		t.Errorf("a stored blob went missing")
	}
	// All of the cache's free room can be uploaded into again.
	content := bytes.Repeat([]byte("w"), maxSize-int(kept.Size()))
	var msgs []*distbuildv1.WriteRequest
	for off := 0; off < len(content); off += 1 << 20 {
		msgs = append(msgs, &distbuildv1.WriteRequest{Data: content[off:min(off+1<<20, len(content))]})
	}
	msgs[0].Digest = digest.OfBytes(content).Proto()
	if _, err := f.write(t, msgs...); err != nil {
		t.Errorf("an upload filling the cache after the idle one ended: %v", err)
	}
}
