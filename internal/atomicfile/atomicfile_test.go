package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"distbuild/internal/atomicfile"
)

func TestWriteReplacesWholeFilesAndLeavesNoTemporaries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first\n", "second, longer\n", ""} {
		if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("content %q, %v; want %q", got, err, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the file (no temporaries)", len(entries))
	}
	if err := atomicfile.Write(filepath.Join(path, "below-a-file"), []byte("x"), 0o600); err == nil {
		t.Error("writing below a regular file succeeded")
	}
}
