package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestS3FlagMistakesAreRefused checks that a wrong --store, endpoint or
// credentials file stops trove serve at once, saying what is wrong, before
// it listens. (The S3 store itself is proved against a real SeaweedFS in
// artifactcache/s3store and e2e.)
func TestS3FlagMistakesAreRefused(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--s3-endpoint", "http://127.0.0.1:1"}, "go with --store"},
		{[]string{"--store", "gs://bucket"}, "want s3://BUCKET"},
		{[]string{"--store", "s3://bucket/p", "--s3-endpoint", "ftp://x"}, "want http://HOST:PORT"},
		{[]string{"--store", "s3://bucket/p", "--s3-endpoint", "http://127.0.0.1:1"}, "needs a credentials file"},
		{[]string{"--store", "s3://bucket/p", "--s3-endpoint", "http://127.0.0.1:1", "--s3-credentials-file", creds}, "aws_secret_access_key"},
	} {
		args := append([]string{"serve", "--dir", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", ""}, tc.args...)
		code, out := runTrove(t, args...)
		if code != 2 || !strings.Contains(out, tc.says) {
			t.Errorf("trove %s: exit %d, output %q; want exit 2 saying %q", strings.Join(args, " "), code, out, tc.says)
		}
	}
}
