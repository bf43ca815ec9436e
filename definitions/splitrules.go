package definitions

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SplitRule assigns things to a split artifact: installed file paths to a
// chunk's split artifacts, or chunk artifact names to a stratum's. Splitting
// lets a system take a library's runtime files without its headers.
type SplitRule struct {
	// Artifact is the full split artifact name, e.g. "zlib-devel".
	Artifact string
	// Include holds regular expressions matched against whole names.
	Include []string

	res []*regexp.Regexp
}

// Matches reports whether name (a path relative to the artifact root, or a
// chunk artifact name) matches one of the rule's expressions, anchored at
// both ends.
func (r SplitRule) Matches(name string) bool {
	for _, re := range r.res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// NewSplitRule compiles a rule. Workers receive rules as text over the wire
// and compile them here, so a split happens exactly as the controller
// resolved it.
func NewSplitRule(artifact string, include []string) (SplitRule, error) {
	r := SplitRule{Artifact: artifact, Include: include}
	for i, expr := range include {
		re, err := regexp.Compile(`^(?:` + expr + `)$`)
		if err != nil {
			return SplitRule{}, &badExpr{index: i, expr: expr, err: err}
		}
		r.res = append(r.res, re)
	}
	return r, nil
}

// badExpr says which expression of a rule does not compile.
type badExpr struct {
	index int
	expr  string
	err   error
}

func (e *badExpr) Error() string { return fmt.Sprintf("bad regular expression %q: %v", e.expr, e.err) }

// MatchSplit returns the artifact of the first rule matching name, which is
// how split rules are defined to apply; ok is false when none does.
func MatchSplit(rules []SplitRule, name string) (artifact string, ok bool) {
	for _, r := range rules {
		if r.Matches(name) {
			return r.Artifact, true
		}
	}
	return "", false
}

// qualify turns a "-suffix" artifact name into "<owner>-suffix"; other names
// are already full names.
func qualify(owner, name string) string {
	if strings.HasPrefix(name, "-") {
		return owner + name
	}
	return name
}

// qualifyRules resolves rule names against owner and returns a fresh slice,
// so rules shared from DEFAULTS are never modified.
func qualifyRules(owner string, rules []SplitRule) []SplitRule {
	out := make([]SplitRule, len(rules))
	for i, r := range rules {
		r.Artifact = qualify(owner, r.Artifact)
		out[i] = r
	}
	return out
}

// parseSplitRules reads a list of {artifact, include} rules, compiling every
// expression so a bad one is reported where it is written.
func parseSplitRules(file string, items []*yaml.Node, what string) ([]SplitRule, error) {
	rules := make([]SplitRule, 0, len(items))
	for _, it := range items {
		m, err := readMapping(file, it, what+" rule")
		if err != nil {
			return nil, err
		}
		if err := m.checkKnown(what+" rule", splitRuleFields); err != nil {
			return nil, err
		}
		name, err := m.requiredStr("artifact", what+" rule")
		if err != nil {
			return nil, err
		}
		include, _, err := m.strList("include", fmt.Sprintf("%s rule %q", what, name))
		if err != nil {
			return nil, err
		}
		exprNodes, _, _ := m.list("include", what)
		r, err := NewSplitRule(name, include)
		if err != nil {
			var be *badExpr
			errors.As(err, &be)
			return nil, errorf(file, exprNodes[be.index].Line, "%s rule %q: %v", what, name, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

var splitRuleFields = map[string]bool{"artifact": true, "include": true}
