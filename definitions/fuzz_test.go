package definitions_test

import (
	"context"
	"errors"
	"testing"
	"testing/fstest"

	"distbuild/definitions"
)

// FuzzParseMorph feeds arbitrary bytes to every morph parser and to a whole
// resolution (as the stratum of a small tree). Run it with
// `go test -fuzz=FuzzParseMorph ./definitions`; in a plain test run it
// checks the seed corpus. Any panic fails; so does an error that is not a
// *definitions.Error, because every bad-input error must name its file.
func FuzzParseMorph(f *testing.F) {
	for _, file := range baseTree() {
		f.Add(file.Data)
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("<<: *missing\n"))
	f.Add([]byte("name: x\nkind: stratum\nchunks:\n- <<: {name: a}\n  <<: [{repo: b}]\n"))
	f.Add([]byte("\t- : {\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(err error) {
			var de *definitions.Error
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *definitions.Error", err, err)
			}
		}
		_, err := definitions.ParseSystem("x.morph", data)
		check(err)
		_, err = definitions.ParseStratum("x.morph", data)
		check(err)
		_, err = definitions.ParseChunk("x.morph", data)
		check(err)

		fsys := with(baseTree(), nil)
		fsys["strata/core.morph"] = &fstest.MapFile{Data: data}
		if defs, err := definitions.Open(fsys); err == nil {
			_, err = defs.Resolve(context.Background(), "systems/base.morph", definitions.CommitsOnly{})
			check(err)
		}
		fsys = with(baseTree(), nil)
		fsys["DEFAULTS"] = &fstest.MapFile{Data: data}
		if defs, err := definitions.Open(fsys); err == nil {
			_, err = defs.Resolve(context.Background(), "systems/base.morph", definitions.CommitsOnly{})
			check(err)
		} else {
			check(err)
		}
	})
}
