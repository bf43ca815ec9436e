package digest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseAcceptsOnlyTheCanonicalForm(t *testing.T) {
	sum := sha256.Sum256([]byte("hello"))
	canonical := hex.EncodeToString(sum[:])
	d, err := Parse(canonical, 5)
	if err != nil || d != OfBytes([]byte("hello")) || d.Hash().String() != canonical || d.Size() != 5 {
		t.Fatalf("Parse(%q, 5) = %v, %v; want the digest of %q", canonical, d, err, "hello")
	}
	for name, s := range map[string]string{
		"empty":      "",
		"short":      canonical[:63],
		"long":       canonical + "0",
		"upper case": strings.ToUpper(canonical),
		"not hex":    "z" + canonical[1:],
		"path":       "../" + canonical[3:],
	} {
		if _, err := Parse(s, 5); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Parse of %s hash: %v, want InvalidArgument", name, err)
		}
		if _, err := ParseCacheKey(s); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ParseCacheKey of %s key: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := Parse(canonical, -1); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative size: %v, want InvalidArgument", err)
	}
	if _, err := FromProto(nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("missing digest: %v, want InvalidArgument", err)
	}
	k, err := ParseCacheKey(canonical)
	if err != nil || k.String() != canonical {
		t.Errorf("ParseCacheKey(%q) = %v, %v", canonical, k, err)
	}
}

func TestProtoRoundTripAndString(t *testing.T) {
	d := OfBytes([]byte("content"))
	back, err := FromProto(d.Proto())
	if err != nil || back != d {
		t.Fatalf("FromProto(Proto()) = %v, %v; want %v", back, err, d)
	}
	if want := "sha256:" + d.Hash().String() + "/7"; d.String() != want {
		t.Errorf("String() = %q, want %q", d.String(), want)
	}
}

func TestHasherAgreesWithOfBytes(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 100_000)
	h := NewHasher()
	h.Write(content[:10])
	fnErr := errors.New("from fn")
	var ran bool
	if err := h.WriteWhile(content[10:], func() error { ran = true; return fnErr }); err != fnErr || !ran {
		t.Fatalf("WriteWhile returned %v (fn ran: %v); want fn's error", err, ran)
	}
	if got, want := h.Digest(), OfBytes(content); got != want {
		t.Errorf("hasher digest %v, want %v", got, want)
	}
}
