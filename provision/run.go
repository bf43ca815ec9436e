package provision

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashicorp/go-hclog"

	"distbuild/internal/cmdline"
)

// DefaultTimeout bounds one run of the scale command: starting a VM can
// take minutes.
const DefaultTimeout = 5 * time.Minute

// Run calls the command for one request, with {"request": ..., "state":
// ...} on stdin.
func Run(ctx context.Context, cfg Config, req Request, s State, log hclog.Logger) error {
	doc, err := json.Marshal(struct {
		Request Request `json:"request"`
		State   State   `json:"state"`
	}{req, s})
	if err != nil {
		return err
	}
	argv := append(append([]string(nil), cfg.Command...), req.Args()...)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return cmdline.Run(ctx, argv, append(doc, '\n'), nil, timeout, log.With("scale", req.Action))
}
