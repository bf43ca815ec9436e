package store

import (
	"bytes"
	"context"
	"hash/crc32"
	"slices"
	"testing"

	"distbuild/clock"
	"distbuild/digest"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
)

func TestChecksummerAgreesWithWholeBlocksWhateverThePieces(t *testing.T) {
	content := make([]byte, 3*blockSize+17)
	for i := range content {
		content[i] = byte(i*31 + i>>12)
	}
	var want []uint32
	for off := 0; off < len(content); off += blockSize {
		want = append(want, crc32.Checksum(content[off:min(off+blockSize, len(content))], castagnoli))
	}
	for _, piece := range []int{1 << 20, 4096, 7, blockSize, blockSize + 1, len(content)} {
		var c checksummer
		for rest := content; len(rest) > 0; {
			n := min(piece, len(rest))
			c.Write(rest[:n])
			rest = rest[n:]
		}
		if got := c.checksums(); !slices.Equal(got, want) {
			t.Errorf("pieces of %d: got %d sums, want %d", piece, len(got), len(want))
		}
	}
	var empty checksummer
	if got := empty.checksums(); len(got) != 0 {
		t.Errorf("empty blob has %d block checksums", len(got))
	}
}

func TestChecksumRecordsRoundTripAndRefuseMismatches(t *testing.T) {
	var c checksummer
	c.Write(make([]byte, blockSize+1))
	sums := c.checksums()
	raw := sums.encode()
	got, err := decodeBlockChecksums(raw, blockSize+1)
	if err != nil || !slices.Equal(got, sums) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, c := range map[string]struct {
		raw  []byte
		size int64
	}{
		"too many blocks for the size": {raw, 10},
		"too few blocks for the size":  {raw, 3 * blockSize},
		"torn record":                  {raw[:len(raw)-1], blockSize + 1},
		"empty record":                 {nil, 0},
		"another block size":           {[]byte{0, 0, 0x10, 0}, 0},
	} {
		if _, err := decodeBlockChecksums(c.raw, c.size); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// damageChecksums replaces or deletes blobs' checksum records behind the
// store's back, as a damaged or older index would have them.
func damageChecksums(t *testing.T, dir string, records map[[32]byte][]byte) {
	t.Helper()
	db, err := bolt.Open(layout{root: dir}.indexPath(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketBlobChecksums))
		for h, v := range records {
			if v == nil {
				if err := b.Delete(h[:]); err != nil {
					return err
				}
			} else if err := b.Put(h[:], v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMissingOrDamagedChecksumsAreMadeByTheFirstRead(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	s := testStore(t, dir, 0, clk)
	missingContent := bytes.Repeat([]byte("m"), blockSize+3)
	missing := put(t, s, missingContent)
	damaged := put(t, s, []byte("damaged record"))
	rotten := put(t, s, []byte("rotten, and no record"))
	if err := s.PutManifest(manifest(key(1), rotten)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	damageChecksums(t, dir, map[[32]byte][]byte{
		missing.Hash(): nil,
		damaged.Hash(): {1, 2, 3},
		rotten.Hash():  nil,
	})
	corruptFile(t, layout{root: dir}.blobPath(rotten.Hash()), 0)

	s = testStore(t, dir, 0, clk)
	if q := dirEntries(t, s.dirs.quarantineDir()); len(q) != 0 || !has(s, rotten) {
		t.Fatalf("opening the store read blobs' content: quarantine holds %v", q)
	}
	for d, content := range map[digest.Digest][]byte{missing: missingContent, damaged: []byte("damaged record")} {
		got, err := readAll(s, d)
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("first read of a blob without valid checksums: %d bytes, %v", len(got), err)
		}
		if _, ok, err := s.ix.checksums(d); !ok || err != nil {
			t.Errorf("the first read did not record the blob's checksums: %v", err)
		}
	}
	_, err := readAll(s, rotten)
	wantCode(t, err, codes.DataLoss)
	if has(s, rotten) || hasManifest(s, key(1)) {
		t.Errorf("a blob without checksums whose content no longer matches was served after its first read")
	}
}

func TestWrongChecksumsOfAnIntactBlobAreRewrittenNotQuarantined(t *testing.T) {
	// Three blocks, the record wrong for the second: a read finds it while
	// the first block is being sent.
	content := bytes.Repeat([]byte("intact, but the index lies about it. "), 3*blockSize/37)
	var c checksummer
	c.Write(content)
	right := c.checksums()
	wrong := slices.Clone(right)
	wrong[1] ^= 1
	for name, repair := range map[string]func(t *testing.T, s *Store){
		"by a scrub": func(t *testing.T, s *Store) {
			report, err := s.Scrub(context.Background())
			if err != nil || report.Checked != 1 || len(report.Corrupt) != 0 {
				t.Fatalf("scrub: %+v, %v; want the blob checked and found intact", report, err)
			}
		},
		"by a read": func(t *testing.T, s *Store) {
			if got, err := readAll(s, digest.OfBytes(content)); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("read: %d bytes, %v", len(got), err)
			}
		},
		"by a check": func(t *testing.T, s *Store) {
			b, err := s.OpenBlob(digest.OfBytes(content))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.CheckBlocks(context.Background()); err != nil {
				t.Fatalf("check: %v", err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			clk := clock.NewFake(epoch)
			s := testStore(t, dir, 0, clk)
			d := put(t, s, content)
			s.Close()
			damageChecksums(t, dir, map[[32]byte][]byte{d.Hash(): wrong.encode()})

			s = testStore(t, dir, 0, clk)
			repair(t, s)
			if q := dirEntries(t, s.dirs.quarantineDir()); len(q) != 0 {
				t.Errorf("intact blob quarantined: %v", q)
			}
			sums, ok, err := s.ix.checksums(d)
			if !ok || err != nil || !slices.Equal(sums, right) {
				t.Errorf("checksum record after repair: %v, %v", ok, err)
			}
			if got, err := readAll(s, d); err != nil || !bytes.Equal(got, content) {
				t.Errorf("after the repair the blob reads %d bytes, %v", len(got), err)
			}
		})
	}
}
