package controller

import (
	"google.golang.org/protobuf/proto"

	pb "distbuild/proto/distbuild/v1"
)

// Bounds on a step profile the controller keeps. A profile is stored in
// the step's StepFinished or StepFailed event (so it is as durable as the
// step's outcome and survives a restart with it) and held in memory with
// the build's history, so a worker that sends more than a well-behaved one
// does (see worker/step: 32 phases, 120 samples) has the excess dropped.
const (
	maxProfilePhases  = 64
	maxProfileSamples = 240
)

// boundedProfile returns p, or a copy cut to the bounds above.
func boundedProfile(p *pb.StepProfile) *pb.StepProfile {
	if p == nil || (len(p.Phases) <= maxProfilePhases && len(p.Samples) <= maxProfileSamples) {
		return p
	}
	p = proto.Clone(p).(*pb.StepProfile)
	p.Phases = p.Phases[:min(len(p.Phases), maxProfilePhases)]
	p.Samples = p.Samples[:min(len(p.Samples), maxProfileSamples)]
	return p
}
