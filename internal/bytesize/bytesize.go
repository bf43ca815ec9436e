// Package bytesize reads and prints sizes the way operators write them on
// command lines ("50GiB", "512MiB"), for every daemon's size flags.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a size given on the command line as a number with an
// optional binary or decimal unit ("50GiB", "512MiB", "10GB", "4096"), so
// operators need not count zeros. It implements pflag.Value.
type Size int64

var units = []struct {
	suffix string
	factor int64
}{
	// Longest suffixes first, so "GiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// Set parses a size.
func (b *Size) Set(s string) error {
	num, factor := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, factor = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/factor {
		return fmt.Errorf("%q is not a size: want a whole number with an optional unit such as MiB or GiB", s)
	}
	*b = Size(n * factor)
	return nil
}

// String formats the size in the largest binary unit that divides it.
func (b Size) String() string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.factor == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.factor, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Type names the value in --help.
func (b *Size) Type() string { return "size" }
