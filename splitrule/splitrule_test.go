package splitrule

import (
	"errors"
	"testing"
)

func mustNew(t *testing.T, artifact string, include ...string) Rule {
	t.Helper()
	r, err := New(artifact, include)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTheFirstMatchingRuleWinsAndExpressionsMatchWholeNames(t *testing.T) {
	rules := []Rule{
		mustNew(t, "zlib-devel", `usr/include/.*`, `usr/lib/.*\.a`),
		mustNew(t, "zlib-libs", `usr/lib/.*`),
		mustNew(t, "zlib-misc", `.*`),
	}
	for name, want := range map[string]string{
		"usr/include/zlib.h":  "zlib-devel",
		"usr/lib/libz.a":      "zlib-devel",
		"usr/lib/libz.so.1":   "zlib-libs",
		"etc/zlib.conf":       "zlib-misc",
		"x/usr/include/foo.h": "zlib-misc", // anchored at the start
		"usr/lib/libz.a.bak":  "zlib-libs", // anchored at the end
	} {
		if got, ok := Match(rules, name); !ok || got != want {
			t.Errorf("Match(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if got, ok := Match(rules[:1], "etc/zlib.conf"); ok {
		t.Errorf("Match of a name no rule covers = %q; want no match", got)
	}
}

func TestABadExpressionSaysWhichItIs(t *testing.T) {
	_, err := New("x-bins", []string{`usr/bin/.*`, `usr/(lib`})
	var ee *ExprError
	if !errors.As(err, &ee) || ee.Index != 1 || ee.Expr != `usr/(lib` {
		t.Fatalf("New: %v; want an *ExprError for expression 1", err)
	}
	if want := "bad regular expression \"usr/(lib\": error parsing regexp: missing closing ): `^(?:usr/(lib)$`"; err.Error() != want {
		t.Errorf("error %q; want %q", err, want)
	}
}
