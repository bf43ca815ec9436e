package initiator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"distbuild/artifactcache"
	"distbuild/digest"
	"distbuild/manifestsig"
	"distbuild/provenance"
)

const provenanceAbout = `Prints how an artifact was made, from the signed provenance its worker
uploaded with it (an in-toto statement with SLSA v1 provenance in a DSSE
envelope): the definitions, the step's cache key and the document it is the
hash of, the source, the staged artifacts, the commands and environment, and
the worker, its key, sandbox and times. Before printing, it checks the
manifest's and the envelope's signatures with the worker's registered key
(from a copy of the farm's registry file, or --public-key), that the
statement's subjects are exactly the manifest's artifacts, that every one of
those blobs matches its digest, and that the cache key is the SHA-256 of its
document. Exit status 0 means all of that holds. --json prints the verified
statement itself.`

func runProvenance(env *Env, args []string) int {
	c := newArtifactCommand(env, "provenance", provenanceAbout)
	asJSON := c.fs.Bool("json", false, "print the raw in-toto statement (JSON) instead of a summary")
	key, cache, keys, code, ok := c.open(env, args)
	if !ok {
		return code
	}
	defer cache.Close()
	st, raw, err := verifiedProvenance(context.Background(), cache, key, keys)
	if err != nil {
		return fail(env, "provenance", fmt.Errorf("artifact %s: %w", key, err))
	}
	if *asJSON {
		fmt.Fprintf(env.Stdout, "%s\n", raw)
		return ExitOK
	}
	printProvenance(env.Stdout, st)
	return ExitOK
}

// verifiedProvenance fetches the provenance of the artifact under key and
// checks everything provenanceAbout promises, returning the statement and
// its JSON.
func verifiedProvenance(ctx context.Context, cache *artifactcache.Client, key digest.CacheKey, keys keyFlags) (*provenance.Statement, []byte, error) {
	m, err := cache.GetManifest(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	if m.GetSignature() == nil {
		return nil, nil, fmt.Errorf("%s is not signed", m.StepName)
	}
	pub, err := keys.signerKey(m.Signature.Signer, key)
	if err != nil {
		return nil, nil, err
	}
	if err := manifestsig.Verify(m, pub); err != nil {
		return nil, nil, err
	}
	f, err := provenance.File(m)
	if err != nil {
		return nil, nil, err
	}
	if f == nil {
		return nil, nil, fmt.Errorf("%s has no provenance (built by a worker from before provenance, or by a farm without it)", m.StepName)
	}
	d, err := digest.FromProto(f.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("the provenance's digest: %w", err)
	}
	if d.Size() > provenance.MaxEnvelopeSize {
		return nil, nil, fmt.Errorf("the provenance is %d bytes, more than the %d allowed", d.Size(), provenance.MaxEnvelopeSize)
	}
	var env bytes.Buffer
	if err := cache.Fetch(ctx, d, &env); err != nil {
		return nil, nil, fmt.Errorf("fetching the provenance %s: %w", d, err)
	}
	st, raw, err := provenance.Open(env.Bytes(), pub)
	if err != nil {
		return nil, nil, err
	}
	if err := provenance.CheckManifest(st, m); err != nil {
		return nil, nil, err
	}
	for _, f := range m.Files {
		if !provenance.IsSubject(f) {
			continue
		}
		d, err := digest.FromProto(f.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("file %s: %w", f.Name, err)
		}
		if err := cache.Fetch(ctx, d, io.Discard); err != nil {
			return nil, nil, fmt.Errorf("subject %s (%s): %w", f.Name, d, err)
		}
	}
	if doc := st.Predicate.BuildDefinition.ExternalParameters.Step.CacheKeyDocument; len(doc) > 0 {
		if sum := sha256.Sum256(doc); hex.EncodeToString(sum[:]) != key.String() {
			return nil, nil, errors.New("the cache key is not the SHA-256 of the cache-key document the provenance gives")
		}
	}
	return st, raw, nil
}

// printProvenance writes st for a person to read.
func printProvenance(w io.Writer, st *provenance.Statement) {
	def, run := st.Predicate.BuildDefinition, st.Predicate.RunDetails
	ext, in := def.ExternalParameters, def.InternalParameters
	fmt.Fprintf(w, "%s %s %s (%s)\n", ext.Step.Kind, ext.Step.Name, ext.Step.CacheKey, ext.Step.Arch)
	fmt.Fprintf(w, "built by worker %s (key %s), sandbox %s, job %s\n", in.Worker, in.KeyID, in.Sandbox, run.Metadata.InvocationID)
	fmt.Fprintf(w, "from %s to %s\n", run.Metadata.StartedOn, run.Metadata.FinishedOn)
	d := ext.Definitions
	fmt.Fprintf(w, "definitions %s at %s, %s (step defined in %s)\n", orUnknown(d.Repo), orUnknown(d.Commit), orUnknown(d.Morph), orUnknown(d.StepFile))
	if len(ext.Step.CacheKeyDocument) > 0 {
		fmt.Fprintf(w, "cache key document (its SHA-256 is the cache key): %s\n", ext.Step.CacheKeyDocument)
	} else {
		fmt.Fprintln(w, "cache key document: not recorded")
	}
	for _, p := range in.Phases {
		for _, c := range p.Commands {
			fmt.Fprintf(w, "  %s: %s\n", p.Name, c)
		}
	}
	if len(in.Environment) > 0 {
		fmt.Fprintf(w, "environment: %s\n", strings.Join(in.Environment, " "))
	}
	fmt.Fprintf(w, "%d dependencies:\n", len(def.ResolvedDependencies))
	for _, r := range def.ResolvedDependencies {
		fmt.Fprintf(w, "  %s\n", describe(r))
	}
	fmt.Fprintf(w, "%d subjects, each matching the manifest and its content:\n", len(st.Subject))
	for _, r := range st.Subject {
		fmt.Fprintf(w, "  %s\n", describe(r))
	}
	fmt.Fprintln(w, "provenance verified: signed by the worker's registered key")
}

// describe is one resource on one line.
func describe(r provenance.ResourceDescriptor) string {
	var parts []string
	for _, p := range []string{r.Name, r.URI} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	for _, alg := range []string{"sha256", "gitCommit"} {
		if v, ok := r.Digest[alg]; ok {
			parts = append(parts, alg+":"+v)
		}
	}
	if k := r.Annotations["cacheKey"]; k != "" {
		parts = append(parts, "cache key "+k)
	}
	return strings.Join(parts, " ")
}

// orUnknown is s, or "(unknown)" when a controller did not send it.
func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
