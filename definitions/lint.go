package definitions

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Finding is one problem Lint reports: an error, which stops a build, or
// a warning, which a build tolerates as morph did but which is likely a
// mistake.
type Finding struct {
	*Error
	Warning bool
}

// Lint checks definitions strictly, the way a definitions repository's own
// CI should: every morph in morphs (all .morph files of fsys when morphs is
// empty) must parse, and every system and cluster among them must resolve.
// It returns every error and warning, each once, sorted by file and line;
// none means the definitions are clean. Refs are not resolved (lint runs
// offline), so branch and tag refs pass.
func Lint(fsys fs.FS, morphs []string) []Finding {
	l := &linter{seen: map[findingKey]bool{}}
	defs, err := Open(fsys)
	if err != nil {
		l.add(err, false)
		return l.findings
	}
	if len(morphs) == 0 {
		morphs = allMorphs(fsys)
	}
	for _, file := range morphs {
		_, kind, err := readMorph(fsys, file, "", 0, knownKinds...)
		if err == nil {
			err = l.check(defs, file, kind)
		}
		l.add(err, false)
	}
	slices.SortStableFunc(l.findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return l.findings
}

type linter struct {
	findings []Finding
	seen     map[findingKey]bool
}

type findingKey struct {
	Error
	warning bool
}

// add records err, if it is one, once: a broken stratum is met again by
// every system that uses it.
func (l *linter) add(err error, warning bool) {
	if err == nil {
		return
	}
	de, ok := err.(*Error)
	if !ok {
		de = errorf("", 0, "%v", err)
	}
	key := findingKey{Error: *de, warning: warning}
	if !l.seen[key] {
		l.seen[key] = true
		l.findings = append(l.findings, Finding{Error: de, Warning: warning})
	}
}

// check parses one morph of a known kind; a system or cluster is resolved
// too, and its warnings recorded.
func (l *linter) check(defs *Definitions, file, kind string) error {
	data, err := fs.ReadFile(defs.fsys, file)
	if err != nil {
		return errorf(file, 0, "cannot read morph: %v", unwrapPathError(err))
	}
	switch kind {
	case "chunk":
		_, err = ParseChunk(file, data)
	case "stratum":
		_, err = ParseStratum(file, data)
	default:
		var g *Graph
		if g, err = defs.Resolve(context.Background(), file, anyRef{}); err == nil {
			for _, w := range g.Warnings {
				l.add(w, true)
			}
		}
	}
	return err
}

// anyRef stands a commit in for every branch or tag, so that Lint can
// check definitions whose refs it cannot resolve offline.
type anyRef struct{}

func (anyRef) ResolveRef(_ context.Context, repo, ref string) (string, error) {
	sum := sha1.Sum([]byte(repo + "\x00" + ref))
	return hex.EncodeToString(sum[:]), nil
}

// allMorphs lists every .morph file of fsys outside hidden directories
// (such as .git), in lexical order.
func allMorphs(fsys fs.FS) []string {
	var out []string
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && p != "." && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if !d.IsDir() && path.Ext(p) == ".morph" {
			out = append(out, p)
		}
		return nil
	})
	return out
}
