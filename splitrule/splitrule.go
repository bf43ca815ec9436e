// Package splitrule decides which split artifact a name goes into: an
// installed file's path into one of a chunk's split artifacts, or a chunk
// artifact's name into one of a stratum's. It is the matching alone, with
// no dependency on the definitions loader, so the worker applies a split
// exactly as the controller resolved it without linking the YAML parser.
package splitrule

import (
	"fmt"
	"regexp"
)

// Rule assigns the names matching any of its expressions to one split
// artifact. Splitting lets a system take a library's runtime files without
// its headers.
type Rule struct {
	// Artifact is the full split artifact name, e.g. "zlib-devel".
	Artifact string
	// Include holds regular expressions matched against whole names.
	Include []string

	res []*regexp.Regexp
}

// New compiles a rule. Each expression is anchored at both ends, so it
// must match a whole name, as the definitions format defines.
func New(artifact string, include []string) (Rule, error) {
	r := Rule{Artifact: artifact, Include: include}
	for i, expr := range include {
		re, err := regexp.Compile(`^(?:` + expr + `)$`)
		if err != nil {
			return Rule{}, &ExprError{Index: i, Expr: expr, Err: err}
		}
		r.res = append(r.res, re)
	}
	return r, nil
}

// ExprError is an expression of a rule that does not compile. It says
// which one (Index into Include), so a loader can point at the line that
// holds it.
type ExprError struct {
	Index int
	Expr  string
	Err   error
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("bad regular expression %q: %v", e.Expr, e.Err)
}

func (e *ExprError) Unwrap() error { return e.Err }

// Matches reports whether name (a path relative to the artifact root, or a
// chunk artifact name) matches one of the rule's expressions.
func (r Rule) Matches(name string) bool {
	for _, re := range r.res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// Match returns the artifact of the first rule matching name, which is how
// split rules are defined to apply (a chunk's own rules come before the
// defaults, so they win); ok is false when none does.
func Match(rules []Rule, name string) (artifact string, ok bool) {
	for _, r := range rules {
		if r.Matches(name) {
			return r.Artifact, true
		}
	}
	return "", false
}
