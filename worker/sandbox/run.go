package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Reasons a command was stopped before it finished, told apart with
// errors.Is because a worker reports and retries them differently: a
// cancelled job is nobody's failure, a timeout or stall is the build's.
var (
	ErrCancelled = errors.New("command cancelled")
	ErrTimeout   = errors.New("command timed out")
	ErrStalled   = errors.New("command stalled")
	// ErrNoShell is returned, before anything runs, for a command whose
	// root file system (a staging area under Bwrap, a system's root) has
	// no shell to run it.
	ErrNoShell = errors.New("no usable /bin/sh")
)

// Result is how a command that ran ended.
type Result struct {
	// ExitCode is the command's exit status, or 128+N when signal N killed
	// it, as a shell reports it. A non-zero code is the build's failure,
	// not Run's, so Run's error stays nil for it.
	ExitCode int
	// Usage is what the command's process tree used, as the kernel
	// accounted it when the command was reaped: the command and every
	// descendant it waited for (a build's compilers, its tests).
	Usage Usage
}

// Usage is a finished command's resource use, from getrusage(2)
// accounting of the command and its waited-for descendants.
type Usage struct {
	User, System time.Duration
	// PeakMemory is the largest resident set of any one process in the
	// tree, in bytes.
	PeakMemory int64
	// ReadBytes and WrittenBytes are storage I/O: blocks read and written
	// by the file systems, in bytes (nothing for a tmpfs or the page
	// cache).
	ReadBytes, WrittenBytes int64
}

func usageOf(ps *os.ProcessState) Usage {
	if ps == nil {
		return Usage{}
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return Usage{User: ps.UserTime(), System: ps.SystemTime()}
	}
	return Usage{
		User:         time.Duration(ru.Utime.Nano()),
		System:       time.Duration(ru.Stime.Nano()),
		PeakMemory:   ru.Maxrss * 1024, // Linux reports kilobytes
		ReadBytes:    ru.Inblock * 512, // in 512-byte units, whatever the block size
		WrittenBytes: ru.Oublock * 512,
	}
}

// Run runs s.Command as s describes and returns when it has ended. It
// returns an error only when the command could not run (bad Spec,
// ErrNoShell, bubblewrap missing), its output could not be delivered, or
// it was stopped (ErrCancelled when ctx ends, ErrTimeout, ErrStalled); a
// stopped command's Result says how it died.
//
// A stopped command's whole process group gets SIGTERM, then SIGKILL after
// s.KillGrace. Background processes a finished command left in its group
// are killed too, so no build step outlives its Run. Under Bwrap the
// sandbox's init (bubblewrap's process inside the pid namespace) stays in
// that group from its fork on, so the SIGKILL ends the whole namespace,
// even processes that made sessions of their own, at whatever point of
// bubblewrap's start-up the command was stopped.
func Run(ctx context.Context, s Spec) (Result, error) {
	if err := s.validate(); err != nil {
		return Result{}, fmt.Errorf("sandbox: %w", err)
	}
	cmd, err := s.command()
	if err != nil {
		return Result{}, err
	}
	out := newOutput(s.Stdout, s.Stderr)
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	cmd.Env = append([]string{}, s.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.Mode == Bwrap {
		// A session of its own (so also a group of its own), in place of
		// bubblewrap's --new-session: see isolation.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	// Without WaitDelay, a background process holding stdout open would
	// keep Wait, and so Run, waiting forever.
	cmd.WaitDelay = s.killGrace()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	pgid := cmd.Process.Pid // Setpgid or Setsid made the command its group's leader
	if s.Started != nil {
		s.Started(pgid)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	stopped, err := supervise(ctx, s, waited, out.active)
	if stopped != nil {
		err = terminate(pgid, s.killGrace(), waited)
	}
	signalGroup(pgid, syscall.SIGKILL)
	res := Result{ExitCode: exitCode(cmd.ProcessState), Usage: usageOf(cmd.ProcessState)}
	if stopped != nil {
		return res, stopped
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) && !errors.Is(err, exec.ErrWaitDelay) {
		return res, fmt.Errorf("running command: %w", err)
	}
	return res, nil
}

// command makes the process for s, without starting it.
func (s Spec) command() (*exec.Cmd, error) {
	if s.Mode == None && s.Root != "" {
		cmd := exec.Command("chroot", s.Root, "/bin/sh", "-c", s.Command)
		cmd.Dir = "/"
		return cmd, nil
	}
	if s.Mode == None {
		cmd := exec.Command("/bin/sh", "-c", s.Command)
		cmd.Dir = s.BuildDir
		return cmd, nil
	}
	bwrap, err := lookBwrap()
	if err != nil {
		return nil, err
	}
	args, err := s.bwrapArgs()
	if err != nil {
		return nil, err
	}
	return exec.Command(bwrap, args...), nil
}

// supervise waits until the command ends by itself, returning Wait's
// error, or until it must be stopped, returning why.
func supervise(ctx context.Context, s Spec, waited <-chan error, active <-chan struct{}) (stop, waitErr error) {
	var timeout, stall <-chan time.Time
	if s.Timeout > 0 {
		t := time.NewTimer(s.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var stallTimer *time.Timer
	if s.NoOutputTimeout > 0 {
		stallTimer = time.NewTimer(s.NoOutputTimeout)
		defer stallTimer.Stop()
		stall = stallTimer.C
	} else {
		active = nil
	}
	for {
		select {
		case err := <-waited:
			return nil, err
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", ErrCancelled, context.Cause(ctx)), nil
		case <-timeout:
			return fmt.Errorf("%w after %v", ErrTimeout, s.Timeout), nil
		case <-stall:
			return fmt.Errorf("%w: no output for %v", ErrStalled, s.NoOutputTimeout), nil
		case <-active:
			stallTimer.Reset(s.NoOutputTimeout)
		}
	}
}

// terminate stops the process group: SIGTERM, then SIGKILL if the command
// has not ended within grace. It returns Wait's error.
func terminate(pgid int, grace time.Duration, waited <-chan error) error {
	signalGroup(pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-waited:
		return err
	case <-t.C:
	}
	signalGroup(pgid, syscall.SIGKILL)
	return <-waited
}

// signalGroup signals every process in the group. An error means the group
// is already gone, which is what signalling it is for.
func signalGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
