package wire

import (
	"bytes"
	"testing"

	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// pieces splits an encoded message the way frames arrive: in pieces of n
// bytes.
func pieces(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		s = append(s, mem.SliceBuffer(b[:k]))
		b = b[k:]
	}
	return s
}

func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestContentCodecDecodesLikeProtobuf(t *testing.T) {
	withUnknown := protowire.AppendBytes(protowire.AppendTag(mustMarshal(t, &distbuildv1.ReadResponse{Data: content(5)}), 9, protowire.BytesType), []byte("x"))
	twice := append(mustMarshal(t, &distbuildv1.ReadResponse{Data: content(3)}), mustMarshal(t, &distbuildv1.ReadResponse{Data: content(4)})...)
	for name, c := range map[string]struct {
		encoded []byte
		fresh   func() proto.Message
	}{
		"read, one byte":            {mustMarshal(t, &distbuildv1.ReadResponse{Data: content(1)}), newRead},
		"read, 200 bytes":           {mustMarshal(t, &distbuildv1.ReadResponse{Data: content(200)}), newRead},
		"read, a whole chunk":       {mustMarshal(t, &distbuildv1.ReadResponse{Data: content(ChunkSize)}), newRead},
		"read, empty":               {nil, newRead},
		"read, with unknown field":  {withUnknown, newRead},
		"read, field repeated":      {twice, newRead},
		"write, content only":       {mustMarshal(t, &distbuildv1.WriteRequest{Data: content(70000)}), newWrite},
		"write, digest and content": {mustMarshal(t, &distbuildv1.WriteRequest{Digest: &distbuildv1.Digest{Hash: "ab", SizeBytes: 3}, Data: content(3)}), newWrite},
		"write, digest only":        {mustMarshal(t, &distbuildv1.WriteRequest{Digest: &distbuildv1.Digest{Hash: "ab"}}), newWrite},
		"other message":             {mustMarshal(t, &distbuildv1.WriteResponse{CommittedSize: 12}), func() proto.Message { return &distbuildv1.WriteResponse{} }},
	} {
		want := c.fresh()
		if err := proto.Unmarshal(c.encoded, want); err != nil {
			t.Fatalf("%s: protobuf: %v", name, err)
		}
		for _, n := range []int{1, 3, 16 << 10, len(c.encoded) + 1} {
			got := c.fresh()
			// A message being reused still holds the previous chunk.
			switch m := got.(type) {
			case *distbuildv1.ReadResponse:
				m.Data = bytes.Repeat([]byte("old"), 10)
			case *distbuildv1.WriteRequest:
				m.Data = bytes.Repeat([]byte("old"), 10)
				m.Digest = &distbuildv1.Digest{Hash: "old"}
			}
			if err := codec.Unmarshal(pieces(c.encoded, n), got); err != nil {
				t.Fatalf("%s in pieces of %d: %v", name, n, err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("%s in pieces of %d: decoded differently from protobuf", name, n)
			}
		}
	}
}

func TestContentCodecRefusesWhatProtobufRefuses(t *testing.T) {
	whole := mustMarshal(t, &distbuildv1.ReadResponse{Data: content(100)})
	for name, encoded := range map[string][]byte{
		"truncated content":         whole[:50],
		"truncated length":          {0x0a, 0x80},
		"varint where bytes belong": {0x08, 0x01},
	} {
		wantErr := proto.Unmarshal(encoded, &distbuildv1.ReadResponse{}) != nil
		gotErr := codec.Unmarshal(pieces(encoded, 7), &distbuildv1.ReadResponse{}) != nil
		if gotErr != wantErr {
			t.Errorf("%s: codec error %v, protobuf error %v", name, gotErr, wantErr)
		}
	}
}

func TestContentCodecReusesTheMessagesBuffer(t *testing.T) {
	encoded := pieces(mustMarshal(t, &distbuildv1.ReadResponse{Data: content(ChunkSize)}), 16<<10)
	m := &distbuildv1.ReadResponse{}
	if err := codec.Unmarshal(encoded, m); err != nil {
		t.Fatal(err)
	}
	first := &m.Data[0]
	allocs := testing.AllocsPerRun(20, func() {
		if err := codec.Unmarshal(encoded, m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || &m.Data[0] != first {
		t.Errorf("decoding a chunk into a reused message allocated %.0f times (buffer reused: %v); want none", allocs, &m.Data[0] == first)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRead() proto.Message  { return &distbuildv1.ReadResponse{} }
func newWrite() proto.Message { return &distbuildv1.WriteRequest{} }
