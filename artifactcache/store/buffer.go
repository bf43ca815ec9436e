package store

import (
	"sync"

	"distbuild/artifactcache/internal/wire"
)

// ChunkSize is the unit in which blobs are read, hashed and streamed:
// the size of one gRPC message, so a chunk read is sent as it is.
const ChunkSize = wire.ChunkSize

// buffers recycles chunk buffers so that streaming many blobs does not
// allocate a mebibyte per read.
var buffers = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

func getBuffer() *[]byte  { return buffers.Get().(*[]byte) }
func putBuffer(b *[]byte) { buffers.Put(b) }
