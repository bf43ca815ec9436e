package controller

import (
	"cmp"
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "distbuild/proto/distbuild/v1"
)

// Workers lists the connected workers, by name, with their free slots and
// the jobs they hold.
func (s *buildService) Workers(context.Context, *pb.WorkersRequest) (*pb.WorkersResponse, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &pb.WorkersResponse{}
	for _, w := range c.sched.Workers() {
		sess := c.sessions[w.Name]
		if sess == nil {
			continue
		}
		info := &pb.WorkerInfo{Name: w.Name, Slots: int32(w.Slots), FreeSlots: int32(w.Free()), Arch: w.Arch,
			Tags: w.Tags, Connected: timestamppb.New(sess.connected), Draining: sess.draining}
		sess.mu.Lock()
		info.LastSeen = timestamppb.New(sess.lastSeen)
		sess.mu.Unlock()
		phases := map[string]pb.JobPhase{}
		for _, js := range sess.last.GetJobs() {
			phases[js.JobId] = js.Phase
		}
		for id, step := range sess.jobs {
			j := &pb.WorkerJob{JobId: id, StepName: step, Phase: phases[id]}
			if t := c.sched.Job(id); t != nil {
				for _, b := range c.sched.WantedBy(t) {
					j.BuildIds = append(j.BuildIds, b.ID)
				}
				slices.Sort(j.BuildIds)
			}
			info.Jobs = append(info.Jobs, j)
		}
		slices.SortFunc(info.Jobs, func(a, b *pb.WorkerJob) int {
			return cmp.Or(cmp.Compare(a.StepName, b.StepName), cmp.Compare(a.JobId, b.JobId))
		})
		// A copy (of the tags): the response is encoded after the lock is
		// released.
		resp.Workers = append(resp.Workers, proto.Clone(info).(*pb.WorkerInfo))
	}
	return resp, nil
}

// DrainWorker tells a connected worker to drain: the controller gives it
// no new steps, and the worker finishes those it holds and stops.
func (s *buildService) DrainWorker(_ context.Context, req *pb.DrainWorkerRequest) (*pb.DrainWorkerResponse, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	sess := c.sessions[req.GetName()]
	if sess == nil {
		return nil, status.Errorf(codes.NotFound, "no worker named %q is connected", req.GetName())
	}
	c.drain(sess, "on request")
	return &pb.DrainWorkerResponse{Jobs: int32(len(sess.jobs))}, nil
}

// drain gives a worker no new steps and tells it to finish those it holds
// and stop. Called with c.mu held.
func (c *Controller) drain(sess *session, why string) {
	if !sess.draining {
		sess.draining = true
		c.sched.Drain(sess.name)
		c.log.Info("draining a worker "+why, "worker", sess.name, "jobs", len(sess.jobs))
	}
	sess.send(&pb.WorkResponse{Drain: true})
}
