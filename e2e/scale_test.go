package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"distbuild/controller"
)

// scaleScript is a --scale-command that starts and stops real worker
// processes, as deploy/scale-virsh.sh starts and stops KVM guests.
const scaleScript = `#!/bin/sh
. "$(dirname "$0")/scale.env"
cat > "$DIR/state-$1.json"
case "$1" in
up)
  i=0
  while [ "$i" -lt "$2" ]; do
    i=$((i+1))
    n=$(($(cat "$DIR/seq" 2>/dev/null || echo 0) + 1)); echo "$n" > "$DIR/seq"
    name=auto-$n
    setsid "$WORKER" --name "$name" --slots 1 --controller "$CONTROLLER" --cache "$CACHE" \
      --work-dir "$DIR/$name" --sandbox bwrap > "$DIR/$name.log" 2>&1 < /dev/null &
    echo $! > "$DIR/$name.pid"
    echo "up $name $3" >> "$DIR/actions"
  done ;;
down)
  pid=$(cat "$DIR/$2.pid")
  # A drained worker stops by itself; give it a moment, then make sure.
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill "$pid" 2>/dev/null
  echo "down $2" >> "$DIR/actions" ;;
esac
`

// TestTheFarmGrowsForWaitingStepsAndShrinksWhenIdle starts a controller
// with no workers and a scale command that starts real worker processes:
// the build's waiting steps make it start workers, the build finishes on
// them, and once idle they are drained and removed.
func TestTheFarmGrowsForWaitingStepsAndShrinksWhenIdle(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "scale.sh")
	if err := os.WriteFile(script, []byte(scaleScript), 0o755); err != nil {
		t.Fatal(err)
	}
	f := startFarmWith(t, []string{"--scale-command", script, "--scale-up-after", "1s", "--scale-down-after", "3s", "--scale-max-workers", "2"})
	t.Cleanup(func() {
		pids, _ := filepath.Glob(filepath.Join(dir, "auto-*.pid"))
		for _, p := range pids {
			data, _ := os.ReadFile(p)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	env := fmt.Sprintf("DIR=%s\nWORKER=%s\nCONTROLLER=%s\nCACHE=%s\n", dir, filepath.Join(binDir, "worker"), f.workerAddr, f.cache)
	if err := os.WriteFile(filepath.Join(dir, "scale.env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}

	r := f.initiator("build", "--partial", "checksum", demoSystem)
	if r.code != 0 {
		t.Fatalf("the build failed (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	actions := func() []string {
		data, _ := os.ReadFile(filepath.Join(dir, "actions"))
		return strings.Fields(strings.ReplaceAll(string(data), "\n", " | "))
	}
	var ups, downs map[string]bool
	waitFor(t, "every worker started to be removed", func() bool {
		ups, downs = map[string]bool{}, map[string]bool{}
		data, _ := os.ReadFile(filepath.Join(dir, "actions"))
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == "up" {
				ups[fields[1]] = true
			} else if len(fields) == 2 && fields[0] == "down" {
				downs[fields[1]] = true
			}
		}
		return len(ups) > 0 && len(downs) == len(ups)
	})
	if len(ups) > 2 {
		t.Errorf("started %d workers, over --scale-max-workers 2: %v", len(ups), actions())
	}
	started := r.started()
	if len(started) == 0 {
		t.Errorf("the build ran no steps:\n%s", r.stdout)
	}
	for step, worker := range started {
		if !ups[worker] {
			t.Errorf("step %s ran on %s, not a worker the scale command started (%v)", step, worker, keysOf(ups))
		}
	}
	for name := range ups {
		if !strings.Contains(readFile(t, filepath.Join(dir, name+".log")), "drain") {
			t.Errorf("%s was removed without being drained first:\n%s", name, readFile(t, filepath.Join(dir, name+".log")))
		}
	}
	var state struct {
		Request struct {
			Action   string
			Count    int
			Platform struct{ Arch string }
		}
		State struct{ Waiting []struct{ Steps int } }
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "state-up.json"))), &state); err != nil ||
		state.Request.Action != "up" || state.Request.Count < 1 || state.Request.Platform.Arch == "" || len(state.State.Waiting) == 0 {
		t.Errorf("the up command's stdin: %+v (%v)", state, err)
	}
	waitFor(t, "the controller to list no workers", func() bool {
		resp, err := http.Get("http://" + f.dashboard + "/api/workers")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var list struct{ Workers []controller.WorkerInfo }
		return json.NewDecoder(resp.Body).Decode(&list) == nil && len(list.Workers) == 0
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
