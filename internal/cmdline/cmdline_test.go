package cmdline

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	for in, want := range map[string][]string{
		`/bin/hook`:                      {"/bin/hook"},
		`  a  b	c `:                      {"a", "b", "c"},
		`sh -c 'echo "$X" | mail ops'`:   {"sh", "-c", `echo "$X" | mail ops`},
		`a "b c" d\ e "x\"y" 'it''s'`:    {"a", "b c", "d e", `x"y`, "its"},
		`notify --to=ops@example.com ''`: {"notify", "--to=ops@example.com", ""},
	} {
		got, err := Split(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `   `, `a 'b`, `a "b`, `a \`} {
		if got, err := Split(bad); err == nil {
			t.Errorf("Split(%q) = %q, want an error", bad, got)
		}
	}
}
