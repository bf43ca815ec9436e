package initiator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"distbuild/definitions"
)

const graphAbout = `Resolves a system or cluster morph in the working tree into its build graph
and prints every step in a valid build order (each after all of its
dependencies) with its cache key and direct dependencies; a cluster's graph
holds every system it lists, subsystems included, with shared steps once.
A cluster whose systems have several architectures has each chunk and
stratum once per architecture that needs it; the text format then adds an
ARCH column, the dot format puts the architecture in each label, and the
json format gives every step's arch in any case.
It runs offline: chunk refs must be commit SHAs (initiator build resolves
branches and tags on the farm). Warnings about the definitions go to
stderr. Formats: text (a table), json (for scripts), dot (for Graphviz:
initiator graph --format=dot systems/x.morph | dot -Tsvg > graph.svg).`

func runGraph(env *Env, args []string) int {
	fs := newFlags(env, "graph", "[--format=text|json|dot] SYSTEM_OR_CLUSTER_MORPH", graphAbout)
	format := fs.String("format", "text", "output format: text, json or dot")
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitUsage
	}
	render, ok := graphFormats[*format]
	if !ok {
		fmt.Fprintf(env.Stderr, "initiator graph: unknown --format %q (want text, json or dot)\n", *format)
		return ExitUsage
	}
	root, morph, err := findDefinitions(env.Dir, fs.Arg(0))
	if err != nil {
		return fail(env, "graph", err)
	}
	defs, err := definitions.Open(os.DirFS(root))
	if err != nil {
		return fail(env, "graph", err)
	}
	g, err := defs.Resolve(context.Background(), morph, definitions.CommitsOnly{})
	if err != nil {
		return fail(env, "graph", err)
	}
	printWarnings(env, "graph", g.Warnings)
	if err := render(env.Stdout, g); err != nil {
		return fail(env, "graph", err)
	}
	return ExitOK
}

var graphFormats = map[string]func(io.Writer, *definitions.Graph) error{
	"text": renderGraphText,
	"json": renderGraphJSON,
	"dot":  renderGraphDot,
}

func depNames(s *definitions.Step) []string {
	out := make([]string, len(s.Deps))
	for i, d := range s.Deps {
		out[i] = d.Name
	}
	return out
}

// renderGraphText prints a table; its ARCH column appears only when the
// steps have several architectures, so a one-architecture table stays as
// it always was.
func renderGraphText(w io.Writer, g *definitions.Graph) error {
	fmt.Fprintf(w, "# %s %s (%s): %d steps in build order\n", graphKind(g), g.Name, strings.Join(g.Archs, ", "), len(g.Steps))
	mixed := len(g.Archs) > 1
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if mixed {
		fmt.Fprintln(tw, "STEP\tKIND\tARCH\tCACHE KEY\tDEPENDS ON")
	} else {
		fmt.Fprintln(tw, "STEP\tKIND\tCACHE KEY\tDEPENDS ON")
	}
	for _, s := range g.Steps {
		deps := strings.Join(depNames(s), ", ")
		if deps == "" {
			deps = "-"
		}
		if mixed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.Arch, s.CacheKey, deps)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.CacheKey, deps)
		}
	}
	return tw.Flush()
}

// graphKind says what was resolved, for the text format's heading.
func graphKind(g *definitions.Graph) string {
	if g.Cluster {
		return "cluster"
	}
	return "system"
}

// printWarnings prints what morph tolerated, each once, to stderr, so
// stdout stays the graph a script reads.
func printWarnings(env *Env, cmd string, warnings []*definitions.Error) {
	for _, w := range warnings {
		fmt.Fprintf(env.Stderr, "initiator %s: warning: %s\n", cmd, w)
	}
}

// GraphJSON is the --format=json document: stable field names for scripts.
type GraphJSON struct {
	// System is the system's name, or the cluster's.
	System string `json:"system"`
	// Cluster is true when a cluster was resolved.
	Cluster bool `json:"cluster,omitempty"`
	// Systems names the system steps: the system, or each system of the
	// cluster.
	Systems []string `json:"systems"`
	// Arch is the architecture of every step, or empty when a cluster's
	// systems have several; Archs lists them in cluster order either way.
	Arch  string          `json:"arch"`
	Archs []string        `json:"archs"`
	Steps []GraphStepJSON `json:"steps"`
}

// GraphStepJSON is one step of GraphJSON. Chunk-only fields are omitted for
// strata and systems. Name is unique in the graph; DefinedName is the name
// the definitions give, which differs when Name had to be qualified.
type GraphStepJSON struct {
	Name        string   `json:"name"`
	DefinedName string   `json:"defined_name"`
	Kind        string   `json:"kind"`
	Arch        string   `json:"arch"`
	CacheKey    string   `json:"cache_key"`
	DependsOn   []string `json:"depends_on"`
	Stratum     string   `json:"stratum,omitempty"`
	Repo        string   `json:"repo,omitempty"`
	Ref         string   `json:"ref,omitempty"`
	Commit      string   `json:"commit,omitempty"`
	BuildMode   string   `json:"build_mode,omitempty"`
	BuildSystem string   `json:"build_system,omitempty"`
}

func renderGraphJSON(w io.Writer, g *definitions.Graph) error {
	doc := GraphJSON{System: g.Name, Cluster: g.Cluster, Systems: make([]string, len(g.Systems)), Arch: g.Arch, Archs: g.Archs, Steps: make([]GraphStepJSON, 0, len(g.Steps))}
	for i, s := range g.Systems {
		doc.Systems[i] = s.Name
	}
	for _, s := range g.Steps {
		js := GraphStepJSON{Name: s.Name, DefinedName: s.DefinedName, Kind: s.Kind.String(), Arch: s.Arch, CacheKey: s.CacheKey.String(), DependsOn: depNames(s)}
		if c := s.Chunk; c != nil {
			js.Stratum, js.Repo, js.Ref, js.Commit, js.BuildMode, js.BuildSystem = c.Stratum, c.Repo, c.Ref, c.Commit, string(c.BuildMode), c.BuildSystem
		}
		doc.Steps = append(doc.Steps, js)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

var dotShapes = map[definitions.Kind]string{
	definitions.KindChunk:   "box",
	definitions.KindStratum: "folder",
	definitions.KindSystem:  "doubleoctagon",
}

// renderGraphDot draws an edge from each step to each step it depends on;
// labels name the step's architecture when there are several.
func renderGraphDot(w io.Writer, g *definitions.Graph) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n", dotID(g.Name))
	for _, s := range g.Steps {
		label := s.Name + "\n" + s.CacheKey.String()[:12]
		if len(g.Archs) > 1 {
			label = s.Name + "\n" + s.Arch + "\n" + s.CacheKey.String()[:12]
		}
		fmt.Fprintf(&b, "  %s [shape=%s, label=%s];\n", dotID(s.Name), dotShapes[s.Kind], dotID(label))
	}
	for _, s := range g.Steps {
		for _, d := range s.Deps {
			fmt.Fprintf(&b, "  %s -> %s;\n", dotID(s.Name), dotID(d.Name))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotID quotes a string as a DOT identifier.
func dotID(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
