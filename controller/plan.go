package controller

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	"distbuild/definitions"
	pb "distbuild/proto/distbuild/v1"
)

// Definitions reads definitions repositories. The controller needs only the
// tree at one commit (no working tree) and, for chunks whose ref is a branch
// or tag, the commit it names.
type Definitions interface {
	// Tree returns the repository's files at commit; close releases them.
	Tree(ctx context.Context, repoURL, commit string) (tree fs.FS, close func() error, err error)
	// ResolveRef returns the commit a branch or tag of a repository names.
	ResolveRef(ctx context.Context, repoURL, ref string) (string, error)
}

// plan is a resolved build request: the steps to run, in build order, and
// what to tell a worker for each.
type plan struct {
	graph *definitions.Graph
	// steps are the steps of the (possibly partial) build, in build order.
	steps []*definitions.Step
	// targets are what the user asked for: the system, or the components.
	targets []*definitions.Step
	// urls are the chunks' repository URLs, aliases resolved.
	urls map[*definitions.Step]string
	// req is the request the plan was made for; its definitions repo,
	// commit and morph go into each job's origin.
	req *pb.StartBuild
	// checks are the steps whose reproducibility the build checks, in
	// build order: those asked for by the request, and those gated by
	// the controller's --require-reproducible (whose dependents wait for
	// their checks). See checks.go.
	checks []*definitions.Step
	asked  map[*definitions.Step]bool
	gated  map[*definitions.Step]bool
	// devices are the cache keys of the plan's chunks that declare
	// devices (usually none), for each job's DeviceCacheKeys.
	devices map[string]bool
}

// refResolver resolves chunk refs through the repo aliases.
type refResolver struct {
	defs    Definitions
	aliases *definitions.RepoAliases
}

func (r refResolver) ResolveRef(ctx context.Context, repo, ref string) (string, error) {
	url, err := r.aliases.Resolve(repo)
	if err != nil {
		return "", err
	}
	return r.defs.ResolveRef(ctx, url, ref)
}

// makePlan reads the definitions at the requested commit and works out every
// step, its cache key and its job. Its errors are the user's to fix (bad
// definitions, unknown component) or the farm's (an unreachable repository);
// both end the build with the error as its reason.
func (c *Controller) makePlan(ctx context.Context, req *pb.StartBuild) (*plan, error) {
	tree, closeTree, err := c.cfg.Definitions.Tree(ctx, req.RepoUrl, req.Commit)
	if err != nil {
		return nil, fmt.Errorf("reading definitions %s at %s: %w", req.RepoUrl, req.Commit, err)
	}
	defer closeTree()
	defs, err := definitions.Open(tree)
	if err != nil {
		return nil, err
	}
	g, err := defs.Resolve(ctx, req.MorphologyPath, refResolver{defs: c.cfg.Definitions, aliases: c.cfg.Aliases})
	if err != nil {
		return nil, err
	}
	urls, err := g.ResolveRepos(c.cfg.Aliases)
	if err != nil {
		return nil, err
	}
	p := &plan{graph: g, urls: urls, req: req}
	if p.targets, err = selectTargets(g, req.Components); err != nil {
		return nil, err
	}
	p.steps = closure(g, p.targets)
	if err := c.planChecks(req, p); err != nil {
		return nil, err
	}
	// Jobs are made when steps are dispatched (holding every job of a large
	// graph would cost memory for every field of every job, and for
	// every step's staging list: quadratic in the graph), so check now
	// what could make one fail.
	for _, s := range p.steps {
		if s.Kind != definitions.KindChunk {
			continue
		}
		if len(s.Chunk.Devices) > 0 {
			if p.devices == nil {
				p.devices = map[string]bool{}
			}
			p.devices[s.CacheKey.String()] = true
		}
		for _, sub := range s.Chunk.Submodules {
			if _, err := c.cfg.Aliases.Resolve(sub.URL); err != nil {
				return nil, fmt.Errorf("%s:%d: chunk %q: submodule %s: %v", s.File, s.Line, s.Name, sub.Path, err)
			}
		}
	}
	return p, nil
}

// selectTargets finds the steps a partial build names; no names means the
// whole system, or every system of a cluster. An unknown name fails the
// request before anything runs.
func selectTargets(g *definitions.Graph, components []string) ([]*definitions.Step, error) {
	if len(components) == 0 {
		return g.Systems, nil
	}
	var targets, unknown []string
	for _, name := range components {
		if g.Step(name) == nil {
			unknown = append(unknown, name)
			continue
		}
		if !slices.Contains(targets, name) {
			targets = append(targets, name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown component(s) %s: not a chunk, stratum or system of %s", strings.Join(unknown, ", "), g.Name)
	}
	out := make([]*definitions.Step, len(targets))
	for i, n := range targets {
		out[i] = g.Step(n)
	}
	return out, nil
}

// closure returns the targets and everything they depend on, in build order.
func closure(g *definitions.Graph, targets []*definitions.Step) []*definitions.Step {
	want := make([]bool, len(g.Steps))
	var mark func(*definitions.Step)
	mark = func(s *definitions.Step) {
		if want[s.Index()] {
			return
		}
		want[s.Index()] = true
		for _, d := range s.Deps {
			mark(d)
		}
	}
	for _, t := range targets {
		mark(t)
	}
	var out []*definitions.Step
	for i, s := range g.Steps {
		if want[i] {
			out = append(out, s)
		}
	}
	return out
}

var buildModes = map[definitions.BuildMode]pb.BuildMode{
	definitions.BuildStaging:   pb.BuildMode_BUILD_MODE_STAGING,
	definitions.BuildBootstrap: pb.BuildMode_BUILD_MODE_BOOTSTRAP,
	definitions.BuildTest:      pb.BuildMode_BUILD_MODE_TEST,
}

var stepKinds = map[definitions.Kind]pb.StepKind{
	definitions.KindChunk:   pb.StepKind_STEP_KIND_CHUNK,
	definitions.KindStratum: pb.StepKind_STEP_KIND_STRATUM,
	definitions.KindSystem:  pb.StepKind_STEP_KIND_SYSTEM,
}

// jobFor describes t's step for a worker; the job id is filled in when
// the step is assigned. makePlan has checked everything that could fail.
// The staging list is t's staging closure as planned, its keys the plan's
// strings: a step stages hundreds of artifacts late in a large system.
func (c *Controller) jobFor(t *task) *pb.Job {
	s, p := t.step, t.plan
	job := &pb.Job{
		Kind:     stepKinds[s.Kind],
		Name:     s.Name,
		CacheKey: t.ref.CacheKey,
		Arch:     s.Arch,
		Timeout:  durationpb.New(c.cfg.StepTimeout),
	}
	var staging []string
	if s.Kind != definitions.KindStratum {
		staging = slices.Collect(t.staging)
		for _, k := range staging {
			if p.devices[k] {
				job.DeviceCacheKeys = append(job.DeviceCacheKeys, k)
			}
		}
	}
	switch s.Kind {
	case definitions.KindChunk:
		ch := s.Chunk
		cj := &pb.ChunkJob{
			RepoUrl:   p.urls[s],
			Commit:    ch.Commit,
			BuildMode: buildModes[ch.BuildMode],
			Prefix:    ch.Prefix,
			MaxJobs:   int32(ch.MaxJobs),
		}
		for _, sub := range ch.Submodules {
			url, _ := c.cfg.Aliases.Resolve(sub.URL)
			cj.Submodules = append(cj.Submodules, &pb.Submodule{Path: sub.Path, Url: url})
		}
		for _, ph := range ch.Phases {
			cj.Phases = append(cj.Phases, &pb.CommandPhase{Name: ph.Name, Commands: ph.Commands})
		}
		for _, d := range ch.Devices {
			cj.Devices = append(cj.Devices, &pb.DeviceNode{Type: d.Type, Filename: d.Filename, Permissions: d.Permissions, Uid: d.UID, Gid: d.GID, Major: d.Major, Minor: d.Minor})
		}
		for _, r := range ch.SplitRules {
			cj.SplitRules = append(cj.SplitRules, &pb.SplitRule{Artifact: r.Artifact, Include: r.Include})
		}
		job.Staging = staging
		job.Spec = &pb.Job_Chunk{Chunk: cj}
	case definitions.KindStratum:
		sj := &pb.StratumJob{}
		for _, a := range s.Stratum.Artifacts {
			sj.Artifacts = append(sj.Artifacts, &pb.StratumArtifact{Name: a.Name, Members: members(a.Members)})
		}
		job.Spec = &pb.Job_Stratum{Stratum: sj}
	case definitions.KindSystem:
		job.Spec = &pb.Job_System{System: systemJob(s)}
	}
	return job
}

func members(ms []definitions.ChunkArtifact) []*pb.ChunkArtifact {
	out := make([]*pb.ChunkArtifact, len(ms))
	for i, m := range ms {
		out[i] = &pb.ChunkArtifact{CacheKey: m.Chunk.CacheKey.String(), Artifact: m.Artifact}
	}
	return out
}

// systemJob lists the chunk artifacts that the system's artifact filters let
// through, and the system-integration commands those artifacts bring, sorted
// by step name (the order in which they must run).
func systemJob(s *definitions.Step) *pb.SystemJob {
	sj := &pb.SystemJob{}
	var integration []*pb.IntegrationCommands
	for _, st := range s.System.Strata {
		for _, a := range st.Stratum.Stratum.Artifacts {
			if !slices.Contains(st.Artifacts, a.Name) {
				continue
			}
			for _, m := range a.Members {
				sj.Contents = append(sj.Contents, &pb.ChunkArtifact{CacheKey: m.Chunk.CacheKey.String(), Artifact: m.Artifact})
				steps := m.Chunk.Chunk.SystemIntegration[m.Artifact]
				for _, name := range slices.Sorted(maps.Keys(steps)) {
					integration = append(integration, &pb.IntegrationCommands{Name: name, Commands: steps[name]})
				}
			}
		}
	}
	sort.SliceStable(integration, func(i, j int) bool { return integration[i].Name < integration[j].Name })
	sj.Integration = integration
	return sj
}
