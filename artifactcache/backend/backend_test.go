package backend_test

import (
	"testing"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/backend/backendtest"
	"distbuild/artifactcache/store"
)

// TestLocalConformance runs the conformance suite against today's local
// store directory.
func TestLocalConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Options{Open: func(t *testing.T) backend.Store {
		st, err := store.Open(store.Options{Dir: t.TempDir(), MaxSizeBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return backend.Local(st)
	}})
}
