package definitions

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"distbuild/splitrule"
)

// SplitRule assigns things to a split artifact: installed file paths to a
// chunk's split artifacts, or chunk artifact names to a stratum's. The
// matching lives in package splitrule, which workers use without linking
// this loader.
type SplitRule = splitrule.Rule

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
		r, err := splitrule.New(name, include)
		if err != nil {
			var bad *splitrule.ExprError
			errors.As(err, &bad)
			return nil, errorf(file, exprNodes[bad.Index].Line, "%s rule %q: %v", what, name, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

var splitRuleFields = map[string]bool{"artifact": true, "include": true}
