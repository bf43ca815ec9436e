package controller

import (
	"distbuild/definitions"
	pb "distbuild/proto/distbuild/v1"
)

// origin is what a worker needs, beyond the job, to write the step's signed
// provenance: the definitions it was resolved from and the canonical
// document its cache key is the SHA-256 of.
func (p *plan) origin(s *definitions.Step) *pb.StepOrigin {
	return &pb.StepOrigin{
		DefinitionsRepo:   p.req.GetRepoUrl(),
		DefinitionsCommit: p.req.GetCommit(),
		Morph:             p.req.GetMorphologyPath(),
		StepFile:          s.File,
		CacheKeyDocument:  s.CacheKeyDocument(),
	}
}
