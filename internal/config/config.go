// Package config lets every distbuild daemon take its settings from a YAML
// file (--config FILE) as well as from its command line, so that a systemd
// unit can say `--config /etc/distbuild/NAME.yaml` and an operator edits one
// file per host instead of a long ExecStart line.
//
// The file holds one mapping whose keys are the daemon's long flag names,
// with the values written as they would be on the command line:
//
//	state-dir: /var/lib/distbuild/controller
//	listen: 10.0.0.10:7878
//	worker-lease: 45s        # durations and sizes as the flags take them
//	max-size: 500GiB
//	require-auth: true
//	repo-alias:              # a repeatable flag takes a list, one item per use ...
//	  - example=https://git.example.com/%s
//	tag:                     # ... or, for key=value flags, a mapping
//	  os: debian12
//	  kvm: "true"
//
// There is one set of names to learn (`NAME --help` lists them) and one
// parser per value (the flag's own), so a value means the same in the file
// as on the command line. A flag given on the command line overrides the
// file (pflag's Changed), which lets an operator try a setting once without
// editing the file. A mistake is never ignored: an unknown key, a value the
// flag refuses, a list for a flag that is not repeatable, a key given twice
// or YAML that does not parse is an error naming the file and line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"distbuild/internal/version"
)

// FlagName is the flag that names the file. It is also the one key a file
// may not hold: a file naming another would make where a setting comes
// from a chain to follow.
const FlagName = "config"

// actions are flags that make a program do something other than run (print
// its version, its help) rather than settings: in a file they would turn a
// daemon into one that exits at once, so they are refused.
var actions = map[string]string{
	FlagName:  "a config file cannot name another config file",
	"help":    "--help is a command-line action, not a setting",
	"version": "--version is a command-line action, not a setting",
}

// Register adds --config to fs. Call it where the daemon registers its
// other flags, and Parse instead of fs.Parse.
func Register(fs *pflag.FlagSet) {
	fs.String(FlagName, "", "read settings from this YAML file, whose keys are the long flag names (e.g. state-dir: /var/lib/distbuild); flags on the command line override it")
}

// Parse parses args into fs and then, if --config names a file, applies it
// with Apply. Errors from fs.Parse (pflag.ErrHelp included) are returned
// unchanged, so a daemon handles them as it did before it took a file.
// fs must have --config (Register).
func Parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	f := fs.Lookup(FlagName)
	if f == nil {
		return errors.New("config.Parse: the flag set has no --config (call config.Register)")
	}
	if path := f.Value.String(); path != "" {
		return Apply(fs, path)
	}
	return nil
}

// Apply sets the flags of fs from the YAML file at path, skipping those
// already set on the command line. Call it after fs.Parse. Each setting is
// applied with fs.Set, so it counts as Changed afterwards, as if given on
// the command line: a daemon that treats a flag given explicitly
// differently (an empty --name, say) treats the file's the same way.
//
// A scalar is the flag's value. A list is one value per item, for
// repeatable flags (string arrays and slices, key=value maps): as many
// uses of the flag, in order; an empty list leaves the default. A mapping
// is one KEY=VALUE per entry, in order, for the same flags (--tag,
// --repo-alias, --worker-tag). A key whose value is missing (`listen:`) is
// an error rather than an empty string: write "" for that.
//
// A setting the command line overrides is checked for its name and shape
// but its value is not parsed, since the flag never sees it.
func Apply(fs *pflag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil // empty, or only comments: nothing to set
	case err != nil:
		return yamlError(path, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return yamlError(path, err)
	default:
		return fmt.Errorf("%s:%d: a config file holds one YAML document; this is a second", path, extra.Line)
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil // a document with nothing in it ("---")
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: want a mapping of settings (flag-name: value), not a %s", path, root.Line, kindName(root))
	}
	firstLine := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := root.Content[i], deref(root.Content[i+1])
		if key.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s:%d: a setting's name must be a flag name, not a %s", path, key.Line, kindName(key))
		}
		name := key.Value
		if line, ok := firstLine[name]; ok {
			return fmt.Errorf("%s:%d: %q is set twice (first on line %d)", path, key.Line, name, line)
		}
		firstLine[name] = key.Line
		if why, ok := actions[name]; ok {
			return fmt.Errorf("%s:%d: %q cannot be set in a config file: %s", path, key.Line, name, why)
		}
		f := fs.Lookup(name)
		if f == nil {
			return fmt.Errorf("%s:%d: unknown setting %q%s", path, key.Line, name, suggestion(fs, name))
		}
		values, lerr := valuesOf(f, value)
		if lerr != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, lerr.line, name, lerr.err)
		}
		if fs.Changed(name) {
			continue // the command line overrides the file
		}
		for _, v := range values {
			if err := fs.Set(name, v.text); err != nil {
				if cause := errors.Unwrap(err); cause != nil {
					err = cause
				}
				return fmt.Errorf("%s:%d: %s: invalid value %q: %v", path, v.line, name, v.text, err)
			}
		}
	}
	return nil
}

// item is one value for a flag, with the line it came from for errors.
type item struct {
	text string
	line int
}

// lineError is a mistake in a setting's value and the line it is on.
type lineError struct {
	line int
	err  error
}

// valuesOf turns a setting's YAML value into the values to give the flag,
// one per use of it.
func valuesOf(f *pflag.Flag, n *yaml.Node) ([]item, *lineError) {
	switch n.Kind {
	case yaml.ScalarNode:
		s, err := scalar(n)
		if err != nil {
			return nil, err
		}
		return []item{s}, nil
	case yaml.SequenceNode:
		if !repeatable(f) {
			return nil, &lineError{n.Line, fmt.Errorf("takes one %s value, not a list", f.Value.Type())}
		}
		var items []item
		for _, e := range n.Content {
			s, err := scalar(deref(e))
			if err != nil {
				return nil, err
			}
			items = append(items, s)
		}
		return items, nil
	case yaml.MappingNode:
		if !repeatable(f) {
			return nil, &lineError{n.Line, fmt.Errorf("takes one %s value, not a mapping", f.Value.Type())}
		}
		var items []item
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := scalar(deref(n.Content[i]))
			if err != nil {
				return nil, err
			}
			v, err := scalar(deref(n.Content[i+1]))
			if err != nil {
				return nil, err
			}
			items = append(items, item{k.text + "=" + v.text, k.line})
		}
		return items, nil
	}
	return nil, &lineError{n.Line, fmt.Errorf("want a value, not a %s", kindName(n))}
}

// scalar is a single value as written: YAML's own typing is not applied,
// so `name: 0123` is the string "0123", and the flag decides what the text
// means.
func scalar(n *yaml.Node) (item, *lineError) {
	switch {
	case n.Kind != yaml.ScalarNode:
		return item{}, &lineError{n.Line, fmt.Errorf("want a single value here, not a %s", kindName(n))}
	case n.Tag == "!!null":
		return item{}, &lineError{n.Line, errors.New(`has no value (write "" for an empty one)`)}
	}
	return item{n.Value, n.Line}, nil
}

// repeatable reports whether f may be given more than once, adding to its
// value each time: string arrays and slices, and key=value maps.
func repeatable(f *pflag.Flag) bool {
	_, slice := f.Value.(pflag.SliceValue)
	return slice || f.Value.Type() == "stringToString"
}

// deref follows a YAML alias (`*name`) to the node it names, so anchors
// can share a value between settings.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "YAML node"
}

// yamlLine matches the line number in the parser's messages ("yaml: line
// 3: did not find expected key"), to give them as FILE:LINE like the rest.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlError(path string, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return fmt.Errorf("%s:%d: not valid YAML: %s", path, line, m[2])
	}
	return fmt.Errorf("%s: not valid YAML: %v", path, err)
}

// suggestion names the flag closest to a misspelt name, when one is close
// enough to be what was meant.
func suggestion(fs *pflag.FlagSet, name string) string {
	best, bestDist := "", 3 // at most two edits away
	fs.VisitAll(func(f *pflag.Flag) {
		if _, action := actions[f.Name]; action {
			return
		}
		if d := editDistance(name, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// ParseCommandLine parses a daemon's command line the way every distbuild
// daemon does: its flags, then the --config file they name, and
// --version. done says the daemon should exit now with code: its help or
// version was printed (0), or a mistake was reported on stderr, pointing
// at --help (2).
func ParseCommandLine(fs *pflag.FlagSet, args []string, name string, stdout, stderr io.Writer) (code int, done bool) {
	Register(fs)
	showVersion := version.Register(fs)
	if err := Parse(fs, args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0, true
		}
		fmt.Fprintf(stderr, "%s: %v (see %s --help)\n", name, err, name)
		return 2, true
	}
	if *showVersion {
		version.Print(stdout, name)
		return 0, true
	}
	return 0, false
}
