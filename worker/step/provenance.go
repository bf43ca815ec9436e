package step

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"time"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/provenance"
)

// provenanceFile is the manifest's name for the step's signed provenance.
const provenanceFile = "provenance"

// record is what a job's build notes for its provenance as it goes: every
// artifact blob it staged, assembled or listed, and the environment its
// commands ran with.
type record struct {
	inputs []provenance.ResourceDescriptor
	env    []string
	// sourceDate is the step's SOURCE_DATE_EPOCH, for its manifest.
	sourceDate time.Time
}

// used notes that the job used file f of the manifest under cacheKey.
func (rec *record) used(cacheKey string, f *pb.ManifestFile) {
	d := provenance.Descriptor(f)
	d.Annotations["cacheKey"] = cacheKey
	rec.inputs = append(rec.inputs, d)
}

// statement says how the job made files: the subjects are its artifact and
// metadata files, the log a byproduct.
func (r *Runner) statement(job *pb.Job, rec *record, files []*pb.ManifestFile, log *pb.Digest, started, finished time.Time) *provenance.Statement {
	o := job.GetOrigin()
	def := provenance.BuildDefinition{
		BuildType: provenance.BuildType,
		ExternalParameters: provenance.ExternalParameters{
			Definitions: provenance.Definitions{
				Repo:     o.GetDefinitionsRepo(),
				Commit:   o.GetDefinitionsCommit(),
				Morph:    o.GetMorph(),
				StepFile: o.GetStepFile(),
			},
			Step: provenance.Step{Name: job.Name, Kind: kindNames[job.Kind], Arch: job.Arch, CacheKey: job.CacheKey},
		},
		InternalParameters: provenance.InternalParameters{
			Environment: slices.Sorted(slices.Values(rec.env)),
			Worker:      r.cfg.Worker,
			KeyID:       provenance.KeyID(r.cfg.SigningKey.Public().(ed25519.PublicKey)),
			Sandbox:     string(r.cfg.Sandbox),
		},
	}
	// The document is the controller's canonical JSON; anything else (a
	// controller that sent none, or bytes that are not JSON) is left out
	// rather than break the statement's encoding.
	if doc := o.GetCacheKeyDocument(); json.Valid(doc) {
		def.ExternalParameters.Step.CacheKeyDocument = doc
	}
	switch spec := job.Spec.(type) {
	case *pb.Job_Chunk:
		c := spec.Chunk
		def.ResolvedDependencies = append(def.ResolvedDependencies, provenance.ResourceDescriptor{
			Name: "source", URI: "git+" + c.RepoUrl + "@" + c.Commit, Digest: map[string]string{"gitCommit": c.Commit},
		})
		for _, s := range c.Submodules {
			def.ResolvedDependencies = append(def.ResolvedDependencies, provenance.ResourceDescriptor{
				Name: "submodule " + s.Path, URI: "git+" + s.Url,
			})
		}
		for _, p := range c.Phases {
			def.InternalParameters.Phases = append(def.InternalParameters.Phases, provenance.Phase{Name: p.Name, Commands: p.Commands})
		}
	case *pb.Job_System:
		for _, i := range spec.System.Integration {
			def.InternalParameters.Phases = append(def.InternalParameters.Phases, provenance.Phase{Name: "system-integration " + i.Name, Commands: i.Commands})
		}
	}
	def.ResolvedDependencies = append(def.ResolvedDependencies, rec.inputs...)
	run := provenance.RunDetails{
		Builder: provenance.Builder{ID: provenance.BuilderID(r.cfg.Worker)},
		Metadata: provenance.Metadata{
			InvocationID: job.JobId,
			StartedOn:    started.UTC().Format(time.RFC3339Nano),
			FinishedOn:   finished.UTC().Format(time.RFC3339Nano),
		},
	}
	if log != nil {
		run.Byproducts = []provenance.ResourceDescriptor{provenance.Descriptor(&pb.ManifestFile{Name: "log", Digest: log})}
	}
	return &provenance.Statement{
		Type:          provenance.StatementType,
		Subject:       provenance.Subjects(files),
		PredicateType: provenance.PredicateType,
		Predicate:     provenance.Provenance{BuildDefinition: def, RunDetails: run},
	}
}

// uploadProvenance signs st in a DSSE envelope with the worker's key,
// stores it in the cache, and describes it for the manifest.
func (r *Runner) uploadProvenance(ctx context.Context, st *provenance.Statement) (*pb.ManifestFile, error) {
	env, err := provenance.Sign(st, r.cfg.SigningKey)
	if err != nil {
		return nil, err
	}
	const what = "uploading the provenance"
	d, err := r.uploadBytes(ctx, what, env)
	if err != nil {
		return nil, doing(what, err)
	}
	return &pb.ManifestFile{Name: provenanceFile, Role: pb.FileRole_FILE_ROLE_PROVENANCE, Digest: d.Proto()}, nil
}
