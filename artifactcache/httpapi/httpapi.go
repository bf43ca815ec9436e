// Package httpapi serves the artifact cache read-only over plain HTTP, so
// people and scripts can fetch a blob or look at a manifest with curl or a
// browser, with no gRPC tooling:
//
//	GET /blobs/sha256/<hash>     the blob's bytes (Range, ETag, HEAD work)
//	GET /artifacts/<cache-key>   the manifest, as JSON
//
// It never serves bytes it has not verified: a blob is re-hashed before
// its first byte is sent, and a corrupt one is quarantined and answered
// with an error instead.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"distbuild/artifactcache/store"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Source is what the API reads: a trove's local store
// (backend.LocalStore), or its local store in front of a shared bucket
// (cached.Store), which copies a blob into the local store before it is
// served from there.
type Source interface {
	// Lookup finds a blob by hash; NotFound when it is absent.
	Lookup(ctx context.Context, h digest.Hash) (digest.Digest, error)
	// OpenLocal opens a blob in the local store, whose blocks can all be
	// checked before the first byte is sent.
	OpenLocal(ctx context.Context, d digest.Digest) (*store.Blob, error)
	// GetManifest returns a manifest; NotFound when there is none.
	GetManifest(ctx context.Context, key digest.CacheKey) (*distbuildv1.Manifest, error)
}

// Handler serves the read-only HTTP API of a store.
type Handler struct {
	store Source
	log   hclog.Logger
	mux   *http.ServeMux
}

// New returns the HTTP API for st; logger may be nil to discard logs.
func New(st Source, logger hclog.Logger) *Handler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Handler{store: st, log: logger, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /blobs/sha256/{hash}", h.serveBlob)
	h.mux.HandleFunc("GET /artifacts/{key}", h.serveManifest)
	return h
}

// ServeHTTP routes a request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// serveBlob checks every block of the blob before the first byte goes out,
// so the status line can still say that it is corrupt. That costs a second
// read of the file (usually from the page cache, checked at memory speed)
// but lets http.ServeContent handle ranges and conditional requests
// unchanged. A HEAD request sends no bytes and so skips the check.
func (h *Handler) serveBlob(w http.ResponseWriter, r *http.Request) {
	hash, err := digest.ParseHash(r.PathValue("hash"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.store.Lookup(r.Context(), hash)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := h.store.OpenLocal(r.Context(), d)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer b.Close()
	if r.Method != http.MethodHead {
		if err := b.CheckBlocks(r.Context()); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"sha256:`+hash.String()+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(b, 0, d.Size()))
}

// serveManifest answers with the manifest as indented JSON. Its ETag is
// the hash of the stored (deterministic) protobuf, which stays the same
// while the manifest does, unlike the JSON text, whose spacing protojson
// deliberately varies between builds.
func (h *Handler) serveManifest(w http.ResponseWriter, r *http.Request) {
	key, err := digest.ParseCacheKey(r.PathValue("key"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	m, err := h.store.GetManifest(r.Context(), key)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sum := sha256.Sum256(raw)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(append(body, '\n')))
}

// httpCodes maps the store's gRPC codes to HTTP statuses.
var httpCodes = map[codes.Code]int{
	codes.InvalidArgument: http.StatusBadRequest,
	codes.NotFound:        http.StatusNotFound,
	codes.DataLoss:        http.StatusInternalServerError,
	codes.Canceled:        499, // client closed the request, as nginx names it
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	code, ok := httpCodes[st.Code()]
	if !ok {
		code = http.StatusInternalServerError
	}
	if code >= 500 {
		h.log.Error("HTTP request failed", "path", r.URL.Path, "error", err)
	}
	http.Error(w, fmt.Sprintf("%s: %s", st.Code(), st.Message()), code)
}
