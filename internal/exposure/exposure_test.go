package exposure_test

import (
	"strings"
	"testing"

	"distbuild/internal/exposure"
)

func TestOnlyListenersBeyondLoopbackWithoutTLSOrAuthAreWarnedAbout(t *testing.T) {
	for _, c := range []struct {
		addr      string
		tls, auth bool
		want      string // "" for no warning
	}{
		{"127.0.0.1:7878", false, false, ""},
		{"[::1]:7878", false, false, ""},
		{"localhost:7878", false, false, ""},
		{"10.0.0.2:7878", true, true, ""},
		{"10.0.0.2:7878", false, true, "without TLS"},
		{"10.0.0.2:7878", true, false, "without authentication"},
		{"0.0.0.0:7878", false, false, "without TLS (--tls-cert, --tls-key) or authentication (--require-auth)"},
		{"[::]:7070", false, true, "without TLS"},
	} {
		got := exposure.Warning(c.addr, c.tls, c.auth)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("Warning(%s, tls=%v, auth=%v) = %q; want %q", c.addr, c.tls, c.auth, got, c.want)
		}
	}
}
