// Package digest names blobs and artifacts by their content. Names are
// checked once, where they enter the program (a request, a file name, the
// index), and are plain comparable values from then on, so the rest of the
// cache can use them as map keys and never re-validates or re-parses text.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Hash is a SHA-256 sum. Every 32-byte value is a valid hash, so holding
// one needs no further checks; only its text form is parsed.
type Hash [sha256.Size]byte

// Digest names a blob by hash and length. The length travels with the hash
// so that a store can refuse an oversized upload before reading a byte and
// never trusts a length it has not been told up front. The zero value is not
// a valid digest of anything that can be looked up; digests come from New,
// Parse, FromProto or a Hasher.
type Digest struct {
	hash Hash
	size int64
}

// ParseHash reads the canonical text form of a hash: exactly 64 lower-case
// hex characters. Anything else (upper case, path separators, "..") is
// refused, so a hash is always safe to use in a file name.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, status.Errorf(codes.InvalidArgument, "hash %q: want %d lower-case hex characters, got %d characters", truncate(s), 2*len(h), len(s))
	}
	for i := range h {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		if hi|lo == invalidHex {
			return h, status.Errorf(codes.InvalidArgument, "hash %q: not all lower-case hex", truncate(s))
		}
		h[i] = hi<<4 | lo
	}
	return h, nil
}

// invalidHex marks, in hexValue, characters that are not lower-case hex.
// Parsing is on the hot path of FindMissing (thousands of digests per
// call), hence a table rather than encoding/hex plus a separate check.
const invalidHex = 0xff

var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = invalidHex
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// String returns the canonical text form: 64 lower-case hex characters.
func (h Hash) String() string {
	var buf [2 * len(h)]byte
	hex.Encode(buf[:], h[:])
	return string(buf[:])
}

// New pairs a hash with a length. A negative length is refused because no
// content has one; sizes are otherwise unbounded here, and stores apply
// their own limits.
func New(h Hash, size int64) (Digest, error) {
	if size < 0 {
		return Digest{}, status.Errorf(codes.InvalidArgument, "digest %s: negative size %d", h, size)
	}
	return Digest{hash: h, size: size}, nil
}

// Parse checks a digest given as text hash and length, as the HTTP API and
// the index hold them.
func Parse(hash string, size int64) (Digest, error) {
	h, err := ParseHash(hash)
	if err != nil {
		return Digest{}, err
	}
	return New(h, size)
}

// FromProto checks a digest received on the wire. A missing digest is an
// InvalidArgument error like any other malformed one.
func FromProto(p *distbuildv1.Digest) (Digest, error) {
	if p == nil {
		return Digest{}, status.Error(codes.InvalidArgument, "digest is missing")
	}
	return Parse(p.GetHash(), p.GetSizeBytes())
}

// OfBytes returns the digest of an in-memory blob, for small things such as
// logs and metadata that are built in memory anyway.
func OfBytes(b []byte) Digest {
	return Digest{hash: sha256.Sum256(b), size: int64(len(b))}
}

// Hash returns the content hash.
func (d Digest) Hash() Hash { return d.hash }

// Size returns the content length in bytes.
func (d Digest) Size() int64 { return d.size }

// Proto returns the wire form.
func (d Digest) Proto() *distbuildv1.Digest {
	return &distbuildv1.Digest{Hash: d.hash.String(), SizeBytes: d.size}
}

// String is the form used in logs and error messages: "sha256:HEX/SIZE".
func (d Digest) String() string { return fmt.Sprintf("sha256:%s/%d", d.hash, d.size) }

// truncate keeps error messages short when a client sends a huge string.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
