package wire

import (
	"encoding/binary"

	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// contentCodec is gRPC's protobuf codec with shortcuts for the two
// messages that carry blob content, ReadResponse and WriteRequest.
//
// Sending, an OutgoingWrite stands for a WriteRequest whose content gRPC
// takes over instead of copying (see ChunkPool).
//
// gRPC hands a received message to its codec as the HTTP/2 frames it came
// in; the standard codec first copies them into one buffer, then protobuf
// copies the bytes field again into a freshly allocated (and zeroed)
// slice, a mebibyte per message. For a message holding nothing but
// content, this codec copies the frames once, straight into the capacity
// the message's Data field already has. A receiver that alternates between
// two messages with RecvMsg therefore allocates nothing per chunk, and
// every other message is decoded by the standard codec. The bytes on the
// wire are ordinary protobuf either way.
type contentCodec struct{ standard encoding.CodecV2 }

// codec is shared by every client and server of the cache.
var codec = contentCodec{standard: encoding.GetCodecV2(grpcproto.Name)}

// ContentCodec makes a call use the cache's codec, whatever the options
// its connection was made with. The client's streaming calls use it.
func ContentCodec() grpc.CallOption { return grpc.ForceCodecV2(codec) }

// Field numbers of the content fields, from cache.proto.
const (
	readResponseDataField protowire.Number = 1
	writeRequestDataField protowire.Number = 2
)

// Name keeps the standard content-subtype, so peers need nothing special.
func (contentCodec) Name() string { return grpcproto.Name }

// Marshal sends an OutgoingWrite's content without copying it, and
// encodes everything else the standard way.
func (c contentCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*OutgoingWrite); ok {
		return w.marshal()
	}
	return c.standard.Marshal(v)
}

// Unmarshal decodes a content-only ReadResponse or WriteRequest into the
// existing capacity of its Data field, and anything else the standard way.
// A caller that reuses a message must be done with its previous Data.
func (c contentCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *distbuildv1.ReadResponse:
		if content, ok := decodeContentOnly(data, readResponseDataField, m.Data); ok {
			m.Reset()
			m.Data = content
			return nil
		}
	case *distbuildv1.WriteRequest:
		if content, ok := decodeContentOnly(data, writeRequestDataField, m.Data); ok {
			m.Reset()
			m.Data = content
			return nil
		}
	}
	return c.standard.Unmarshal(data, v)
}

// decodeContentOnly decodes a message whose encoding is exactly one
// non-empty bytes field with the given number, appending the field's bytes
// to dst[:0]. It reports false, having changed nothing, for any other
// encoding (other fields, a repeated field, unknown fields, truncation),
// which the standard codec then decodes or refuses.
func decodeContentOnly(data mem.BufferSlice, field protowire.Number, dst []byte) ([]byte, bool) {
	// The tag and length fit in the first few bytes: a one-byte tag and a
	// varint of at most ten.
	var head [1 + binary.MaxVarintLen64]byte
	n := copyPrefix(head[:], data)
	num, typ, tagLen := protowire.ConsumeTag(head[:n])
	if tagLen < 0 || num != field || typ != protowire.BytesType {
		return nil, false
	}
	size, sizeLen := protowire.ConsumeVarint(head[tagLen:n])
	skip := tagLen + sizeLen
	if sizeLen < 0 || size == 0 || uint64(data.Len()-skip) != size {
		return nil, false
	}
	if uint64(cap(dst)) < size {
		dst = make([]byte, 0, size)
	}
	dst = dst[:0]
	for _, b := range data {
		chunk := b.ReadOnlyData()
		if skip >= len(chunk) {
			skip -= len(chunk)
			continue
		}
		dst = append(dst, chunk[skip:]...)
		skip = 0
	}
	return dst, true
}

// copyPrefix copies the first len(dst) bytes of data (or all of it, if
// shorter) into dst.
func copyPrefix(dst []byte, data mem.BufferSlice) int {
	n := 0
	for _, b := range data {
		if n == len(dst) {
			break
		}
		n += copy(dst[n:], b.ReadOnlyData())
	}
	return n
}
