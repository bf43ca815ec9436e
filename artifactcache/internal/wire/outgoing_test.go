package wire

import (
	"bytes"
	"testing"

	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/protobuf/proto"
)

func TestOutgoingWriteEncodesAsItsWriteRequest(t *testing.T) {
	digest := &distbuildv1.Digest{Hash: "ab12", SizeBytes: 70000}
	for name, c := range map[string]struct {
		digest *distbuildv1.Digest
		data   []byte
	}{
		"first message":           {digest, content(70000)},
		"later message":           {nil, content(ChunkSize)},
		"digest of an empty blob": {digest, nil},
		"one byte":                {nil, content(1)},
	} {
		pool := NewChunkPool(1)
		buf := pool.Take()
		*buf = append((*buf)[:0], c.data...)
		got, err := codec.Marshal(&OutgoingWrite{Digest: c.digest, Data: buf, Pool: pool})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := proto.Marshal(&distbuildv1.WriteRequest{Digest: c.digest, Data: c.data})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Errorf("%s: encoded differently from the WriteRequest", name)
		}
		got.Free()
	}
}

func TestOutgoingWriteLendsItsBufferToGRPCUntilFreed(t *testing.T) {
	pool := NewChunkPool(1)
	buf := pool.Take()
	*buf = (*buf)[:1000]
	first := &(*buf)[0]
	encoded, err := codec.Marshal(&OutgoingWrite{Data: buf, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	last := encoded[len(encoded)-1].ReadOnlyData()
	if &last[0] != first {
		t.Fatalf("the content was copied, not lent")
	}
	if again := pool.Take(); &(*again)[0] == first {
		t.Fatalf("the pool lent a buffer gRPC still holds")
	}
	encoded.Free() // gRPC has written it
	if again := pool.Take(); &(*again)[0] != first || len(*again) != ChunkSize {
		t.Errorf("the buffer did not come back to the pool whole once freed")
	}
}
