package bytesize_test

import (
	"testing"

	"distbuild/internal/bytesize"
)

func TestSizesReadAndPrintAsOperatorsWriteThem(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "512MiB": 512 << 20, "50GiB": 50 << 30, "10GB": 10e9, "1T": 1 << 40, "2 KiB": 2048, "0": 0,
	} {
		var b bytesize.Size
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1GiB", "1.5GiB", "lots", "99999999999TiB"} {
		var b bytesize.Size
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted as %d", in, b)
		}
	}
	if s := bytesize.Size(50 << 30).String(); s != "50GiB" {
		t.Errorf("String() = %q, want 50GiB", s)
	}
}
