package definitions

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file reads YAML through yaml.Node rather than by unmarshalling into
// structs: the node tree keeps line numbers for every value, lets us refuse
// unknown and duplicate keys with a message in the user's terms, and resolves
// anchors, aliases and merge keys (which DEFAULTS files use) in one place.

var (
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// parseYAML parses one file into its top-level node. It recovers from panics
// inside the YAML library so that no input, however odd, crashes the caller.
func parseYAML(file string, data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, errorf(file, 0, "cannot parse YAML: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := locateYAMLError(err.Error(), data)
		return nil, errorf(file, line, "YAML syntax error: %s", msg)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errorf(file, 0, "file is empty")
	}
	return doc.Content[0], nil
}

// locateYAMLError finds the line a YAML library error is about. The library
// says "line N" except on the first line (it omits line 0) and for an alias
// of an unknown anchor, which it reports with no position; for that one the
// line is that of the first "*name" in the file.
func locateYAMLError(msg string, data []byte) (line int, text string) {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		return line, m[2]
	}
	text = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlAnchorRE.FindStringSubmatch(msg); m != nil {
		alias := regexp.MustCompile(`\*` + regexp.QuoteMeta(m[1]) + `(?:[\s,\]}]|$)`)
		for i, l := range strings.Split(string(data), "\n") {
			if alias.MatchString(l) {
				return i + 1, text
			}
		}
	}
	return 1, text
}

// deref follows aliases to the node they stand for. yaml.v3 refuses alias
// cycles while parsing, but we bound the walk anyway.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// kindName describes a node's shape the way a user would, for messages such
// as "must be a list, not a mapping".
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// mapping is a YAML mapping whose keys have been checked for duplicates and
// whose merge keys ("<<") have been applied.
type mapping struct {
	file   string
	line   int
	keys   []string // in file order
	values map[string]*yaml.Node
	lines  map[string]int // line of each key
}

// readMapping reads n as a mapping; what names it in errors ("system",
// "chunk \"zlib\"").
func readMapping(file string, n *yaml.Node, what string) (*mapping, error) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		shape := "nothing"
		if n != nil {
			shape = kindName(n)
		}
		return nil, errorf(file, line, "%s must be a mapping, not %s", what, shape)
	}
	m := &mapping{file: file, line: n.Line, values: map[string]*yaml.Node{}, lines: map[string]int{}}
	if err := m.add(n, what, false, 0); err != nil {
		return nil, err
	}
	return m, nil
}

// add copies n's pairs into m. Merged pairs ("<<: *anchor") never override
// keys written explicitly, as the YAML merge-key convention says.
func (m *mapping) add(n *yaml.Node, what string, merged bool, depth int) error {
	if depth > 20 {
		return errorf(m.file, n.Line, "%s: merge keys nested too deeply", what)
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			return errorf(m.file, n.Content[i].Line, "%s: keys must be plain strings", what)
		}
		if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0) {
			merges = append(merges, v)
			continue
		}
		if _, dup := m.values[k.Value]; dup {
			if merged {
				continue
			}
			return errorf(m.file, k.Line, "%s: key %q appears twice (first on line %d)", what, k.Value, m.lines[k.Value])
		}
		m.keys = append(m.keys, k.Value)
		m.values[k.Value] = v
		m.lines[k.Value] = k.Line
	}
	for _, v := range merges {
		v = deref(v)
		var sources []*yaml.Node
		switch v.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{v}
		case yaml.SequenceNode:
			sources = v.Content
		}
		for _, s := range sources {
			s = deref(s)
			if s == nil || s.Kind != yaml.MappingNode {
				return errorf(m.file, v.Line, "%s: a merge key (<<) must refer to a mapping", what)
			}
			if err := m.add(s, what, true, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkKnown refuses keys outside allowed, so that a typo such as
// "buld-depends" is an error instead of a silently ignored field.
func (m *mapping) checkKnown(what string, allowed map[string]bool) error {
	for _, k := range m.keys {
		if !allowed[k] {
			return errorf(m.file, m.lines[k], "%s: unknown field %q", what, k)
		}
	}
	return nil
}

func (m *mapping) has(key string) bool { _, ok := m.values[key]; return ok }

// lineOf gives the line of key, or of the mapping itself when key is absent.
func (m *mapping) lineOf(key string) int {
	if l, ok := m.lines[key]; ok {
		return l
	}
	return m.line
}

// str reads a scalar string field. Absent and null both give "" and false.
func (m *mapping) str(key, what string) (string, bool, error) {
	v, ok := m.values[key]
	if !ok {
		return "", false, nil
	}
	v = deref(v)
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return "", false, nil
	}
	if v.Kind != yaml.ScalarNode {
		return "", false, errorf(m.file, v.Line, "%s: %s must be a string, not %s", what, key, kindName(v))
	}
	return v.Value, true, nil
}

// requiredStr reads a scalar field that must be present and non-empty.
func (m *mapping) requiredStr(key, what string) (string, error) {
	s, ok, err := m.str(key, what)
	if err != nil {
		return "", err
	}
	if !ok || s == "" {
		return "", errorf(m.file, m.lineOf(key), "%s: missing required field %q", what, key)
	}
	return s, nil
}

// integer reads an integer field.
func (m *mapping) integer(key, what string) (int, bool, error) {
	v, ok := m.values[key]
	if !ok {
		return 0, false, nil
	}
	v = deref(v)
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return 0, false, nil
	}
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		return 0, false, errorf(m.file, v.Line, "%s: %s must be an integer, not %s", what, key, kindName(v))
	}
	i, err := strconv.ParseInt(v.Value, 0, 32)
	if err != nil {
		return 0, false, errorf(m.file, v.Line, "%s: %s must be an integer, not %q", what, key, v.Value)
	}
	return int(i), true, nil
}

// list reads a sequence field, returning its (dereferenced) items.
func (m *mapping) list(key, what string) ([]*yaml.Node, bool, error) {
	v, ok := m.values[key]
	if !ok {
		return nil, false, nil
	}
	v = deref(v)
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil, true, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, false, errorf(m.file, v.Line, "%s: %s must be a list, not %s", what, key, kindName(v))
	}
	items := make([]*yaml.Node, len(v.Content))
	for i, it := range v.Content {
		items[i] = deref(it)
	}
	return items, true, nil
}

// strList reads a list of scalar strings (e.g. a list of commands).
func (m *mapping) strList(key, what string) ([]string, bool, error) {
	items, ok, err := m.list(key, what)
	if err != nil || !ok {
		return nil, ok, err
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
			return nil, false, errorf(m.file, it.Line, "%s: every item of %s must be a string, not %s", what, key, kindName(it))
		}
		out = append(out, it.Value)
	}
	return out, true, nil
}

// mappingField reads a nested mapping field.
func (m *mapping) mappingField(key, what string) (*mapping, bool, error) {
	v, ok := m.values[key]
	if !ok {
		return nil, false, nil
	}
	if d := deref(v); d.Kind == yaml.ScalarNode && d.Tag == "!!null" {
		return nil, false, nil
	}
	sub, err := readMapping(m.file, v, fmt.Sprintf("%s: %s", what, key))
	if err != nil {
		return nil, false, err
	}
	return sub, true, nil
}
