package digest

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CacheKey names the result of one build step: a hash of everything that
// went into it. It has the same text form as a Hash but a separate type, so
// a blob name can never be passed where a step's name is expected.
type CacheKey [32]byte

// ParseCacheKey reads the canonical text form: exactly 64 lower-case hex
// characters. Path-like or upper-case keys are refused, so a key is always
// safe in a URL or file name and has exactly one spelling.
func ParseCacheKey(s string) (CacheKey, error) {
	h, err := ParseHash(s)
	if err != nil {
		return CacheKey{}, status.Errorf(codes.InvalidArgument, "cache key: %s", status.Convert(err).Message())
	}
	return CacheKey(h), nil
}

// String returns the canonical text form.
func (k CacheKey) String() string { return Hash(k).String() }
