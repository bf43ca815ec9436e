package controller

import (
	"context"
	"time"

	"distbuild/provision"
)

// scaler calls the provisioning command (Config.Scale) as the farm's load
// asks: it looks at the farm every quarter of the shorter of UpAfter and
// DownAfter, off the dispatch path, and runs one command at a time.
type scaler struct {
	cfg     provision.Config
	planner *provision.Planner
	stop    context.CancelFunc
	done    chan struct{}
}

// startScaler starts the scaler's loop; stop it with stopScaler.
func (c *Controller) startScaler(cfg provision.Config) {
	ctx, cancel := context.WithCancel(context.Background())
	c.scaler = &scaler{cfg: cfg, planner: provision.NewPlanner(cfg), stop: cancel, done: make(chan struct{})}
	every := min(max(min(cfg.UpAfter, cfg.DownAfter)/4, 100*time.Millisecond), 10*time.Second)
	t := c.cfg.Clock.NewTicker(every)
	go func() {
		defer close(c.scaler.done)
		defer t.Stop()
		for {
			select {
			case <-t.C():
				c.scale(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (c *Controller) stopScaler() {
	if c.scaler != nil {
		c.scaler.stop()
		<-c.scaler.done
	}
}

// scale plans once and runs what the plan asks for. Workers to remove are
// drained under the same lock that planned it, so no step lands on one in
// between; the command is told to remove them once they are drained.
func (c *Controller) scale(ctx context.Context) {
	c.mu.Lock()
	state := c.scaleState()
	reqs := c.scaler.planner.Plan(state)
	for _, r := range reqs {
		if s := c.sessions[r.Worker]; r.Action == "down" && s != nil {
			c.drain(s, "idle past --scale-down-after")
		}
	}
	c.mu.Unlock()
	for _, r := range reqs {
		log := c.log.With("action", r.Action, "args", r.Args())
		log.Info("running the scale command")
		outcome := "ok"
		if err := provision.Run(ctx, c.scaler.cfg, r, state, c.log.Named("scale-command")); err != nil {
			outcome = "failed"
			log.Error("the scale command failed", "error", err)
		}
		c.metrics.scaleRuns.WithLabelValues(r.Action, outcome).Inc()
	}
}

// scaleState describes the farm for the planner: the ready steps no free
// slot can take, by platform, and each worker's load. Called with c.mu
// held.
func (c *Controller) scaleState() provision.State {
	s := provision.State{Now: c.cfg.Clock.Now()}
	index := map[string]int{}
	for _, t := range c.sched.Ready() {
		p := provision.Platform{Arch: t.Platform.Arch, Tags: t.Platform.Tags}
		i, ok := index[p.Key()]
		if !ok {
			i = len(s.Waiting)
			index[p.Key()] = i
			s.Waiting = append(s.Waiting, provision.Demand{Platform: p, Since: t.ReadySince()})
		}
		d := &s.Waiting[i]
		d.Steps++
		if t.ReadySince().Before(d.Since) {
			d.Since = t.ReadySince()
		}
	}
	for _, w := range c.sched.Workers() {
		s.Workers = append(s.Workers, provision.Worker{Name: w.Name, Platform: provision.Platform{Arch: w.Arch, Tags: w.Tags},
			Slots: w.Slots, Busy: w.Running(), IdleSince: w.IdleSince(), Draining: w.Draining()})
	}
	return s
}
