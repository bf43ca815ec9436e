package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"distbuild/internal/tlsflags/tlstest"
	"distbuild/provenance"
)

// TestSecureFarm runs the farm as a careful operator would: TLS on every
// listener (client certificates required by the controller), tokens for
// every worker and user, and signed manifests required by the cache.
func TestSecureFarm(t *testing.T) {
	f := &farm{t: t, dir: t.TempDir(), logs: map[string]*bytes.Buffer{}}
	ca, cert, key := tlstest.Generate(t, f.dir, "farm")
	t.Setenv("GIT_SSL_CAINFO", ca) // git fetches from the trove over HTTPS
	ctrlDir := filepath.Join(f.dir, "controller")
	registry := filepath.Join(ctrlDir, "registry.json")
	tool := func(bin string, args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, bin), args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		return strings.TrimSpace(string(out))
	}
	tokenFile := func(name, token string) string {
		p := filepath.Join(f.dir, name+".token")
		if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	publicKey := tool("worker", "key", "--work-dir", filepath.Join(f.dir, "worker-1"))
	workerToken := tokenFile("worker-1", tool("controller", "worker", "add", "worker-1", "--public-key", publicKey, "--state-dir", ctrlDir))
	aliceToken := tokenFile("alice", tool("controller", "user", "add", "alice", "--state-dir", ctrlDir))

	repoRoot, _ := filepath.Abs("..")
	if out, err := exec.Command(filepath.Join(repoRoot, "demo", "make-trove.sh"), filepath.Join(f.dir, "trove")).CombinedOutput(); err != nil {
		t.Fatalf("make-trove.sh: %v\n%s", err, out)
	}
	f.defs = filepath.Join(f.dir, "trove", "definitions")
	f.bare = filepath.Join(f.dir, "trove", "git", "baserock", "definitions.git")
	serverTLS := []string{"--tls-cert", cert, "--tls-key", key}
	addrs := f.daemon("trove", append([]string{"serve", "--dir", filepath.Join(f.dir, "cache"), "--git-dir", filepath.Join(f.dir, "trove", "git"),
		"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--require-auth", "--registry", registry}, serverTLS...)...)
	f.cache, f.http = addrs["grpc"], addrs["http"]
	f.git(f.defs, "remote", "set-url", "origin", "https://"+f.http+"/git/baserock/definitions.git")
	f.startController(append([]string{"--state-dir", ctrlDir, "--cache", f.cache, "--trove-git", "https://" + f.http + "/git",
		"--require-auth", "--tls-client-ca", ca, "--cache-tls-ca", ca, "--cache-token-file", aliceToken}, serverTLS...)...)
	workerArgs := func(name string) []string {
		return []string{"--name", name, "--slots", "2", "--controller", f.workerAddr, "--cache", f.cache, "--work-dir", filepath.Join(f.dir, name),
			"--sandbox", "bwrap", "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "--cache-tls-ca", ca}
	}
	f.start("worker-1", "worker", append(workerArgs("worker-1"), "--token-file", workerToken)...)
	f.start("intruder", "worker", workerArgs("intruder")...)

	t.Setenv("DISTBUILD_TLS_CA", ca)
	t.Setenv("DISTBUILD_TLS_CERT", cert)
	t.Setenv("DISTBUILD_TLS_KEY", key)
	t.Setenv("DISTBUILD_TOKEN_FILE", aliceToken)
	r := f.initiator("build", demoSystem)
	if r.code != 0 {
		t.Fatalf("secure build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for step, w := range r.started() {
		if w != "worker-1" {
			t.Errorf("%s ran on %s, not the registered worker", step, w)
		}
	}
	if strings.Contains(f.log("intruder"), "job started") || !strings.Contains(f.log("controller"), "refused a call without credentials") {
		t.Errorf("the worker without a token was not refused and logged:\n%s", f.log("intruder"))
	}

	sysKey := regexp.MustCompile(`(?m)^  SYSTEM demo-system ([0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
	if sysKey == nil {
		t.Fatalf("no system key in:\n%s", r.stdout)
	}
	if v := f.initiator("verify", "--registry", registry, sysKey[1]); v.code != 0 || !strings.Contains(v.stdout, "is signed by worker worker-1") {
		t.Errorf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	if v := f.initiator("verify", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", sysKey[1]); v.code != 1 || !strings.Contains(v.stderr, "does not match") {
		t.Errorf("verify against the wrong key: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	checkProvenance(t, f, registry, sysKey[1])

	t.Setenv("DISTBUILD_TOKEN_FILE", "")
	if l := f.initiator("list"); l.code == 0 || !strings.Contains(l.stderr, "token") {
		t.Errorf("list without a token: exit %d\n%s", l.code, l.stderr)
	}
	t.Setenv("DISTBUILD_TOKEN_FILE", aliceToken)
	tool("controller", "user", "remove", "alice", "--state-dir", ctrlDir)
	if l := f.initiator("list"); l.code == 0 || !strings.Contains(l.stderr, "revoked") {
		t.Errorf("list with a revoked token: exit %d\n%s", l.code, l.stderr)
	}
}

// checkProvenance runs `initiator provenance` on the system built by the
// secure farm (whose trove stored each step only after verifying its
// provenance) and on a chunk the system's statement names: both verify,
// say where they came from, and fail against the wrong key.
func checkProvenance(t *testing.T, f *farm, registry, sysKey string) {
	t.Helper()
	p := f.initiator("provenance", "--json", "--registry", registry, sysKey)
	if p.code != 0 {
		t.Fatalf("provenance --json: exit %d\n%s%s", p.code, p.stdout, p.stderr)
	}
	var st provenance.Statement
	if err := json.Unmarshal([]byte(p.stdout), &st); err != nil {
		t.Fatalf("provenance --json is not a statement: %v\n%s", err, p.stdout)
	}
	def := st.Predicate.BuildDefinition
	if st.Type != provenance.StatementType || st.PredicateType != provenance.PredicateType || len(st.Subject) != 1 || !strings.HasSuffix(st.Subject[0].Name, "-rootfs") {
		t.Errorf("the system's statement is %s / %s about %v, want in-toto v1 SLSA v1 about its rootfs", st.Type, st.PredicateType, st.Subject)
	}
	d := def.ExternalParameters.Definitions
	if !strings.HasSuffix(d.Repo, "definitions.git") || len(d.Commit) != 40 || d.Morph != demoSystem || def.ExternalParameters.Step.CacheKey != sysKey {
		t.Errorf("the system's statement says definitions %+v, key %s", d, def.ExternalParameters.Step.CacheKey)
	}
	if in := def.InternalParameters; in.Worker != "worker-1" || in.Sandbox != "bwrap" {
		t.Errorf("the system's statement says it ran on %q in sandbox %q, want worker-1 in bwrap", in.Worker, in.Sandbox)
	}
	chunk := ""
	for _, r := range def.ResolvedDependencies {
		if k := r.Annotations["cacheKey"]; k != "" && r.Digest["sha256"] != "" {
			chunk = k
		}
	}
	if chunk == "" {
		t.Fatalf("the system's statement names no assembled chunk artifact: %+v", def.ResolvedDependencies)
	}
	h := f.initiator("provenance", "--registry", registry, chunk)
	if h.code != 0 || !strings.Contains(h.stdout, "provenance verified") || !strings.Contains(h.stdout, "source git+") || !strings.Contains(h.stdout, "SOURCE_DATE_EPOCH=") {
		t.Errorf("provenance of chunk %s: exit %d\n%s%s", chunk, h.code, h.stdout, h.stderr)
	}
	if w := f.initiator("provenance", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", sysKey); w.code != 1 || !strings.Contains(w.stderr, "does not match") {
		t.Errorf("provenance against the wrong key: exit %d\n%s%s", w.code, w.stdout, w.stderr)
	}
}
