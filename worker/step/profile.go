package step

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"distbuild/clock"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

// Bounds on a step's profile, which travels in every report of the job
// until the controller acknowledges it and is kept with the step's events:
// a few kilobytes however long or many-phased the step.
const (
	// maxPhases bounds the phases recorded; later ones are folded into the
	// last.
	maxPhases = 32
	// maxSamples bounds the CPU and memory series. A full series is halved
	// by merging neighbours and sampled half as often from then on, so it
	// always spans the whole step.
	maxSamples = 120
	// sampleEvery is how often the running command's process tree is
	// sampled.
	sampleEvery = time.Second
)

// profiler records where one step's time goes: its phases, what its
// commands used, and a series of CPU and memory samples of whichever
// command is running. It is safe for concurrent use.
type profiler struct {
	clk   clock.Clock
	start time.Time

	mu      sync.Mutex
	phases  []*pb.PhaseTime
	open    time.Time // when the last phase started; zero when none is open
	usage   sandbox.Usage
	storage struct{ read, written int64 } // from /proc/PID/io, beyond rusage
	samples []*pb.ResourceSample
	// stride is how many ticks each new sample covers; pending gathers
	// the ticks of the sample being made.
	stride  int
	pending struct {
		ticks int
		cpu   float64 // sum of each tick's busy CPUs
		mem   int64   // the largest
	}
}

func newProfiler(clk clock.Clock, start time.Time) *profiler {
	return &profiler{clk: clk, start: start, stride: 1}
}

// phase ends the open phase and starts name, unless name is the open
// phase already (the commands of one build phase are one phase).
func (p *profiler) phase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clk.Now()
	if n := len(p.phases); n > 0 && !p.open.IsZero() && p.phases[n-1].Name == name {
		return
	}
	p.endLocked(now)
	if len(p.phases) == maxPhases {
		p.open = p.start.Add(p.phases[maxPhases-1].Start.AsDuration())
		return // the last phase absorbs the rest
	}
	p.phases = append(p.phases, &pb.PhaseTime{Name: name, Start: durationpb.New(now.Sub(p.start))})
	p.open = now
}

// end ends the open phase, if any.
func (p *profiler) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(p.clk.Now())
}

func (p *profiler) endLocked(now time.Time) {
	if p.open.IsZero() || len(p.phases) == 0 {
		return
	}
	p.phases[len(p.phases)-1].Duration = durationpb.New(now.Sub(p.open))
	p.open = time.Time{}
}

// used adds a finished command's resource use.
func (p *profiler) used(u sandbox.Usage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.usage.User += u.User
	p.usage.System += u.System
	// Not u.PeakMemory: Go starts commands with vfork, so rusage's peak
	// includes the worker's own resident set from before the exec. The
	// peak comes from the samples instead.
	p.usage.ReadBytes += u.ReadBytes
	p.usage.WrittenBytes += u.WrittenBytes
}

// sample records one tick's reading of the running command's tree.
func (p *profiler) sample(cpus float64, mem int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending.ticks++
	p.pending.cpu += cpus
	p.pending.mem = max(p.pending.mem, mem)
	p.usage.PeakMemory = max(p.usage.PeakMemory, mem)
	if p.pending.ticks < p.stride {
		return
	}
	p.samples = append(p.samples, &pb.ResourceSample{
		Offset:      durationpb.New(p.clk.Now().Sub(p.start)),
		CpuCores:    p.pending.cpu / float64(p.pending.ticks),
		MemoryBytes: p.pending.mem,
	})
	p.pending.ticks, p.pending.cpu, p.pending.mem = 0, 0, 0
	if len(p.samples) == maxSamples {
		merged := p.samples[:0]
		for i := 0; i+1 < len(p.samples); i += 2 {
			a, b := p.samples[i], p.samples[i+1]
			merged = append(merged, &pb.ResourceSample{Offset: b.Offset, CpuCores: (a.CpuCores + b.CpuCores) / 2,
				MemoryBytes: max(a.MemoryBytes, b.MemoryBytes)})
		}
		p.samples = merged
		p.stride *= 2
	}
}

// storageIO records a command's storage I/O as /proc last showed it, for
// when it exceeds what rusage accounted.
func (p *profiler) storageIO(read, written int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.storage.read += read
	p.storage.written += written
}

// profile is the step's profile so far, ending any open phase.
func (p *profiler) profile() *pb.StepProfile {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clk.Now()
	p.endLocked(now)
	u := p.usage
	return &pb.StepProfile{
		Duration: durationpb.New(now.Sub(p.start)),
		Phases:   p.phases,
		Usage: &pb.ResourceUsage{
			UserCpuSeconds:   u.User.Seconds(),
			SystemCpuSeconds: u.System.Seconds(),
			PeakMemoryBytes:  u.PeakMemory,
			ReadBytes:        max(u.ReadBytes, p.storage.read),
			WrittenBytes:     max(u.WrittenBytes, p.storage.written),
		},
		Samples: p.samples,
	}
}

// watchTree samples the process tree under pid every sampleEvery until the
// returned stop is called: the CPUs it kept busy since the last tick and
// its resident memory go to the profiler, and, when stopped, the storage
// I/O /proc/PID/io last showed for pid (which includes the descendants it
// has reaped). Reading /proc is best effort: what cannot be read counts
// as nothing.
func (p *profiler) watchTree(pid int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	ticker := p.clk.NewTicker(sampleEvery)
	lastCPU, _ := treeUsage(pid)
	lastAt := p.clk.Now()
	wg.Go(func() {
		defer ticker.Stop()
		var read, written int64
		defer func() { p.storageIO(read, written) }()
		for {
			select {
			case <-done:
				return
			case <-ticker.C():
			}
			cpu, mem := treeUsage(pid)
			now := p.clk.Now()
			busy := 0.0
			if d := now.Sub(lastAt); d > 0 && cpu > lastCPU {
				busy = (cpu - lastCPU).Seconds() / d.Seconds()
			}
			lastCPU, lastAt = cpu, now
			p.sample(busy, mem)
			if r, w, ok := procIO(pid); ok {
				read, written = r, w
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// The kernel's units in /proc/PID/stat: clock ticks (USER_HZ, 100 on
// every Linux architecture we build on) and pages.
var (
	userHZ   = 100.0
	pageSize = int64(os.Getpagesize())
)

// procStat is what /proc/PID/stat says of one process.
type procStat struct {
	ppid int
	cpu  time.Duration // its own and its reaped children's user and system time
	rss  int64
}

func readStat(pid int) (procStat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17, rss 24.
	if len(f) < 22 {
		return procStat{}, false
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k-3], 10, 64); return n }
	ticks := num(14) + num(15) + num(16) + num(17)
	return procStat{ppid: int(num(4)), cpu: time.Duration(float64(ticks) / userHZ * float64(time.Second)), rss: num(24) * pageSize}, true
}

// tree returns the stats of pid and all its descendants.
func tree(pid int) []procStat {
	root, ok := readStat(pid)
	if !ok {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []procStat{root}
	}
	children := map[int][]int{}
	stats := map[int]procStat{pid: root}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		if st, ok := readStat(n); ok {
			stats[n] = st
			children[st.ppid] = append(children[st.ppid], n)
		}
	}
	var out []procStat
	queue := []int{pid}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		out = append(out, stats[n])
		queue = append(queue, children[n]...)
	}
	return out
}

// treeUsage is the CPU time the tree under pid has used so far (its live
// processes and those they reaped) and its resident memory now.
func treeUsage(pid int) (cpu time.Duration, mem int64) {
	for _, st := range tree(pid) {
		cpu += st.cpu
		mem += st.rss
	}
	return cpu, mem
}

// procIO reads the storage bytes /proc/PID/io reports for pid.
func procIO(pid int) (read, written int64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, found := strings.Cut(line, ": ")
		if !found {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "read_bytes":
			read = n
		case "write_bytes":
			written = n
		}
	}
	return read, written, true
}
