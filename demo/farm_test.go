package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"distbuild/definitions"
	"distbuild/digest"
	"distbuild/splitrule"
)

// farm does by hand what distbuild's farm will do with the demo content,
// one step at a time on this machine: fetch a chunk's source at its commit,
// stage the artifacts of everything it depends on, run its phases, keep its
// install tree under its cache key, and assemble a system from the split
// artifacts the system morph asks for. Its only purpose is to prove that the
// content works before the farm exists; it is not safe for concurrent use.
type farm struct {
	aliases *definitions.RepoAliases
	work    string
	// installs maps a chunk's cache key to its install tree (DESTDIR), so a
	// chunk shared by two systems is built once, as in the real cache.
	installs map[digest.CacheKey]string
	// logs holds each built chunk's log by step name.
	logs map[string]string
	// built counts the chunks actually built, for the cache-reuse check.
	built int
}

func newFarm(troveDir, work string) *farm {
	return &farm{
		// "upstream:x" becomes <trove>/git/upstream/x: the same mapping the
		// farm applies to the trove's URL; git finds the x.git directory.
		aliases:  definitions.NewRepoAliases(filepath.Join(troveDir, "git")),
		work:     work,
		installs: map[digest.CacheKey]string{},
		logs:     map[string]string{},
	}
}

// buildError is a chunk whose phase failed.
type buildError struct {
	Step, Phase, Command string
	ExitCode             int
	Log                  string
}

func (e *buildError) Error() string {
	return fmt.Sprintf("chunk %s: %s phase: command %q exited with status %d; log:\n%s",
		e.Step, e.Phase, e.Command, e.ExitCode, e.Log)
}

// buildChunks builds every chunk of g that is not cached yet, in build order,
// stopping at the first failure.
func (f *farm) buildChunks(ctx context.Context, g *definitions.Graph, logf func(string, ...any)) error {
	for _, s := range g.Steps {
		if s.Kind != definitions.KindChunk {
			continue
		}
		if _, ok := f.installs[s.CacheKey]; ok {
			continue
		}
		start := time.Now()
		if err := f.buildChunk(ctx, g, s); err != nil {
			return err
		}
		logf("built %-14s in %v", s.Name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (f *farm) buildChunk(ctx context.Context, g *definitions.Graph, s *definitions.Step) error {
	c := s.Chunk
	dirName := s.Name + "-" + s.CacheKey.String()[:12]
	src := filepath.Join(f.work, "src", dirName)
	staging := filepath.Join(f.work, "staging", dirName)
	dest := filepath.Join(f.work, "install", dirName)
	// Start afresh: a failed earlier attempt may have left these behind.
	for _, d := range []string{src, staging, dest} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	for _, d := range []string{staging, dest} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}

	url, err := f.aliases.Resolve(c.Repo)
	if err != nil {
		return fmt.Errorf("chunk %s: %v", s.Name, err)
	}
	if err := run(ctx, "", nil, "git", "clone", "-q", "--no-checkout", url, src); err != nil {
		return fmt.Errorf("chunk %s: %v", s.Name, err)
	}
	if err := run(ctx, src, nil, "git", "-c", "advice.detachedHead=false", "checkout", "-q", c.Commit); err != nil {
		return fmt.Errorf("chunk %s: %v", s.Name, err)
	}
	for _, dep := range g.Staging(s) {
		if err := run(ctx, "", nil, "cp", "-a", f.installs[dep.CacheKey]+"/.", staging); err != nil {
			return fmt.Errorf("chunk %s: staging %s: %v", s.Name, dep.Name, err)
		}
	}

	jobs := 2
	if c.MaxJobs > 0 {
		jobs = c.MaxJobs
	}
	// A clean environment, as a worker gives its builds: dependencies are
	// found only through the staging area, never the test's environment.
	// Every demo chunk has prefix /usr, so that is where staging looks.
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + f.work,
		"LC_ALL=C",
		"PREFIX=" + c.Prefix,
		"DESTDIR=" + dest,
		"MORPH_ARCH=" + g.Arch,
		fmt.Sprintf("MAKEFLAGS=-j%d", jobs),
		"CPATH=" + staging + "/usr/include",
		"LIBRARY_PATH=" + staging + "/usr/lib",
		"LD_LIBRARY_PATH=" + staging + "/usr/lib",
		"PKG_CONFIG_PATH=" + staging + "/usr/lib/pkgconfig",
	}
	var log bytes.Buffer
	defer func() { f.logs[s.Name] = log.String() }()
	for _, p := range c.Phases {
		for _, command := range p.Commands {
			fmt.Fprintf(&log, "# %s: %s\n", p.Name, command)
			cmd := exec.CommandContext(ctx, "sh", "-c", command)
			cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = src, env, &log, &log
			if err := cmd.Run(); err != nil {
				code := -1
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					code = exit.ExitCode()
				}
				return &buildError{Step: s.Name, Phase: p.Name, Command: command, ExitCode: code, Log: log.String()}
			}
		}
	}
	f.installs[s.CacheKey] = dest
	f.built++
	return nil
}

// assemble builds g's root file system in root: from every chunk, the files
// of the split artifacts that the system's strata artifacts include. It
// copies files and symbolic links; directories are made as needed.
func (f *farm) assemble(g *definitions.Graph, root string) error {
	want := map[definitions.ChunkArtifact]bool{}
	for _, ss := range g.Systems[0].System.Strata {
		for _, sa := range ss.Stratum.Stratum.Artifacts {
			for _, name := range ss.Artifacts {
				if sa.Name == name {
					for _, m := range sa.Members {
						want[m] = true
					}
				}
			}
		}
	}
	for _, s := range g.Steps {
		if s.Kind != definitions.KindChunk {
			continue
		}
		tree, ok := f.installs[s.CacheKey]
		if !ok {
			return fmt.Errorf("chunk %s was not built", s.Name)
		}
		err := filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(tree, path)
			if err != nil {
				return err
			}
			art, ok := splitrule.Match(s.Chunk.SplitRules, rel)
			if !ok || !want[definitions.ChunkArtifact{Chunk: s, Artifact: art}] {
				return nil
			}
			return copyEntry(path, filepath.Join(root, rel), d)
		})
		if err != nil {
			return fmt.Errorf("assembling %s: %v", s.Name, err)
		}
	}
	return nil
}

func copyEntry(from, to string, d fs.DirEntry) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if d.Type()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(from)
		if err != nil {
			return err
		}
		return os.Symlink(target, to)
	}
	info, err := d.Info()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, info.Mode().Perm())
}

// run runs a helper command, returning its output in the error if it fails.
func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
