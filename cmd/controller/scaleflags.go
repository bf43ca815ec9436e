package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"distbuild/internal/cmdline"
	"distbuild/provision"
)

// scaleFlags are the flags that grow and shrink the farm through an
// operator's command.
type scaleFlags struct {
	command             *string
	upAfter, downAfter  *time.Duration
	minWorkers, maxWork *int
	timeout             *time.Duration
	downTags            *map[string]string
}

func addScaleFlags(fs *pflag.FlagSet) *scaleFlags {
	return &scaleFlags{
		command:    fs.String("scale-command", "", "command that adds and removes workers: run as 'COMMAND up N ARCH [KEY=VALUE,...]' when steps have waited --scale-up-after with no free slot (N: how many such steps; the tags they require), and as 'COMMAND down WORKER' once an idle worker has been drained; the farm's state is on its stdin as JSON (see the README)"),
		upAfter:    fs.Duration("scale-up-after", time.Minute, "how long steps wait with no free slot before --scale-command is asked for workers (and again, if they still wait)"),
		downAfter:  fs.Duration("scale-down-after", 10*time.Minute, "how long a worker is idle before it is drained and --scale-command told to remove it"),
		minWorkers: fs.Int("scale-min-workers", 0, "never scale down below this many workers"),
		maxWork:    fs.Int("scale-max-workers", 16, "never ask for workers beyond this many, counting those asked for and not yet joined (0: no limit)"),
		timeout:    fs.Duration("scale-timeout", provision.DefaultTimeout, "longest one run of --scale-command may take"),
		downTags:   fs.StringToString("scale-down-tag", nil, "scale down only workers registered with this key=value tag (repeatable; e.g. provisioned=virsh, given to the pool's workers), never those started by hand (default: any worker)"),
	}
}

// config builds the provisioning set-up, or nil without --scale-command.
func (f *scaleFlags) config() (*provision.Config, error) {
	if *f.command == "" {
		return nil, nil
	}
	argv, err := cmdline.Split(*f.command)
	if err != nil {
		return nil, fmt.Errorf("--scale-command: %w", err)
	}
	if *f.upAfter <= 0 || *f.downAfter <= 0 || *f.timeout <= 0 {
		return nil, errors.New("--scale-up-after, --scale-down-after and --scale-timeout must be positive")
	}
	if *f.minWorkers < 0 || *f.maxWork < 0 || (*f.maxWork > 0 && *f.minWorkers > *f.maxWork) {
		return nil, errors.New("--scale-min-workers and --scale-max-workers must be at least 0, the minimum no more than the maximum")
	}
	return &provision.Config{Command: argv, UpAfter: *f.upAfter, DownAfter: *f.downAfter,
		MinWorkers: *f.minWorkers, MaxWorkers: *f.maxWork, Timeout: *f.timeout, DownTags: *f.downTags}, nil
}
