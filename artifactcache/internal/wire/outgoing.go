package wire

import (
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Field number of WriteRequest.digest, from cache.proto.
const writeRequestDigestField protowire.Number = 1

// ChunkPool lends the buffers that upload content is sent from. Sending a
// message normally copies its content into a buffer of gRPC's, and while
// that copy runs the connection has nothing to write (gRPC lets one stream
// queue only a little data at a time). An OutgoingWrite instead hands its
// buffer to gRPC, which puts it back in the pool once it has written it to
// the connection; only then is it lent again.
type ChunkPool struct{ free chan *[]byte }

// NewChunkPool makes a pool that keeps up to idle buffers for reuse.
func NewChunkPool(idle int) *ChunkPool { return &ChunkPool{free: make(chan *[]byte, idle)} }

// Take lends a buffer of ChunkSize capacity: a returned one if there is
// one, else a new one, so a sender never waits for gRPC to give one back.
func (p *ChunkPool) Take() *[]byte {
	select {
	case b := <-p.free:
		return b
	default:
		b := make([]byte, ChunkSize)
		return &b
	}
}

// Put takes a buffer back (gRPC calls it when done with one). Beyond the
// idle limit it is left to the garbage collector.
func (p *ChunkPool) Put(b *[]byte) {
	if cap(*b) < ChunkSize {
		return
	}
	*b = (*b)[:ChunkSize]
	select {
	case p.free <- b:
	default:
	}
}

// Get makes gRPC's occasional request for a buffer (it never asks this
// pool for one in practice) an ordinary allocation.
func (p *ChunkPool) Get(length int) *[]byte {
	b := make([]byte, length)
	return &b
}

// OutgoingWrite is a WriteRequest that the cache's codec sends without
// copying its content: the sender gives up *Data, which belongs to gRPC
// until gRPC puts it back into Pool. It is encoded exactly as the
// WriteRequest with the same digest and data.
type OutgoingWrite struct {
	Digest *distbuildv1.Digest // on the first message (and on the last when declared after the content), else nil
	Data   *[]byte
	Pool   *ChunkPool
}

// marshal encodes w as the protobuf WriteRequest it stands for: the
// digest field and the data field's tag and length in a small buffer of
// their own, followed by the content itself, uncopied.
func (w *OutgoingWrite) marshal() (mem.BufferSlice, error) {
	var head []byte
	if w.Digest != nil {
		d, err := proto.Marshal(w.Digest)
		if err != nil {
			return nil, err
		}
		head = protowire.AppendBytes(protowire.AppendTag(head, writeRequestDigestField, protowire.BytesType), d)
	}
	if len(*w.Data) == 0 {
		w.Pool.Put(w.Data)
		return mem.BufferSlice{mem.SliceBuffer(head)}, nil
	}
	head = protowire.AppendTag(head, writeRequestDataField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(*w.Data)))
	return mem.BufferSlice{mem.SliceBuffer(head), mem.NewBuffer(w.Data, w.Pool)}, nil
}
