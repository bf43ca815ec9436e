package initiator

import (
	"fmt"
	"os"

	"distbuild/definitions"
)

const lintAbout = `Checks the definitions checkout strictly, as its CI should: every morph must
parse and every system and cluster must resolve, and what a build only
warns about (what morph tolerated: a system-integration entry or a system
artifacts filter that names nothing) counts too. With no MORPH, every
.morph file of the checkout is checked; otherwise only those named (and
what they refer to). Prints one file:line: line per problem and exits 1
when there is any. It runs offline; branch and tag refs are accepted.`

func runLint(env *Env, args []string) int {
	fs := newFlags(env, "lint", "[MORPH...]", lintAbout)
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	var root string
	var morphs []string
	for _, arg := range fs.Args() {
		r, morph, err := findDefinitions(env.Dir, arg)
		if err != nil {
			return fail(env, "lint", err)
		}
		if root == "" {
			root = r
		}
		if r != root {
			return fail(env, "lint", fmt.Errorf("%s is not in the definitions checkout at %s", arg, root))
		}
		morphs = append(morphs, morph)
	}
	if root == "" {
		var err error
		if root, err = checkoutRoot(env.Dir); err != nil {
			return fail(env, "lint", err)
		}
	}
	findings := definitions.Lint(os.DirFS(root), morphs)
	errs, warnings := 0, 0
	for _, f := range findings {
		what := "error"
		if f.Warning {
			what, warnings = "warning", warnings+1
		} else {
			errs++
		}
		loc := f.File
		if f.Line > 0 {
			loc = fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		fmt.Fprintf(env.Stdout, "%s: %s: %s\n", loc, what, f.Msg)
	}
	if len(findings) > 0 {
		fmt.Fprintf(env.Stderr, "initiator lint: %d errors, %d warnings\n", errs, warnings)
		return ExitFailure
	}
	return ExitOK
}
