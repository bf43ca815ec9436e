package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// startBrowser starts Debian's headless Chromium for the test, or skips
// the test when there is none or it cannot start here.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no Chromium to open the dashboard in: apt-get install chromium (.ci/run does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root in a container
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		// This machine's network is closed: nothing but loopback.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1400, 1100),
	)
	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, stop := chromedp.NewContext(alloc)
	t.Cleanup(func() { stop(); stopAlloc() })
	// The first action starts the browser, which lives as long as that
	// action's context: no time limit on it (one stops the browser), but
	// the allocator is stopped if the start takes too long.
	slow := time.AfterFunc(time.Minute, stopAlloc)
	defer slow.Stop()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Skipf("Chromium (%s) cannot start here: %v", path, err)
	}
	return ctx
}

// artifactDir is where a test leaves files for people to look at:
// $TEST_ARTIFACTS when set, else the test's temporary directory.
func artifactDir(t *testing.T) string {
	if dir := os.Getenv("TEST_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// do runs browser actions with a time limit, failing the test with what
// was being waited for.
func do(t *testing.T, ctx context.Context, limit time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		dump, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		page, _ := chromedp.Run(dump, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 3000)`))
		t.Fatalf("in the browser, %s: %v\nthe page, %s", what, err, page)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("in the browser, evaluating %s: %v", expr, err)
	}
	return v
}

// poll waits until a JavaScript expression is true in the page. It polls
// on a timer, not at animation frames, which a tab in the background does
// not get.
func poll(limit time.Duration, expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(100*time.Millisecond))
}

func TestDashboardFollowsABuildInABrowser(t *testing.T) {
	browser := startBrowser(t)
	f := startFarm(t, "worker-1", "worker-2")
	// demo-sum prints a line a second for a while, so its page can tail it.
	f.change("strata/demo-apps/demo-sum.morph", "kind: chunk\n",
		"kind: chunk\npre-build-commands:\n- for i in 1 2 3 4 5 6 7 8; do echo dashboard-tick $i; sleep 1; done\n")
	base := "http://" + f.dashboard
	artifacts := artifactDir(t)

	do(t, browser, 20*time.Second, "opening the builds list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("builds")))
	in := f.startInitiator("build", demoSystem)
	do(t, browser, 30*time.Second, "waiting for the build to appear in the list without a reload",
		chromedp.WaitVisible(chromedp.CSS(`#builds tr.build`)))
	id := eval[string](t, browser, `document.querySelector("#builds tr.build").dataset.build`)
	if id == "" {
		t.Fatal("the builds list shows a build without its id")
	}

	// The build's page, marked so that a reload would be noticed.
	do(t, browser, 20*time.Second, "opening the build's page",
		chromedp.Navigate(base+"/builds/"+id), chromedp.WaitVisible(chromedp.ID("gantt")))
	eval[bool](t, browser, `window.sameDocument = true`)
	sumRow := `#steps tr[data-step="demo-sum"] td.state`
	do(t, browser, 90*time.Second, "waiting for demo-sum to be running",
		chromedp.WaitVisible(chromedp.CSS(sumRow+`.running`)))

	// A second tab tails demo-sum's output while it runs.
	stepTab, closeTab := chromedp.NewContext(browser)
	do(t, stepTab, 30*time.Second, "tailing demo-sum's log live",
		chromedp.Navigate(base+"/builds/"+id+"/steps/demo-sum"),
		poll(25*time.Second, `document.getElementById("log").textContent.includes("dashboard-tick")`))
	closeTab()

	do(t, browser, 60*time.Second, "waiting for demo-sum to turn from running to finished",
		chromedp.WaitVisible(chromedp.CSS(sumRow+`.finished`)))
	if !eval[bool](t, browser, `window.sameDocument === true`) {
		t.Error("the build's page was reloaded to show demo-sum finished; want the change pushed into the page")
	}

	r := in.wait(t, 2*time.Minute)
	if r.code != 0 {
		t.Fatalf("the build failed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	built := len(r.started())
	do(t, browser, 20*time.Second, "waiting for the build to show as succeeded with its Gantt chart",
		chromedp.WaitVisible(chromedp.CSS(`#build-state.succeeded`)),
		poll(15*time.Second, `document.querySelectorAll("#gantt rect.bar.finished").length === `+strconv.Itoa(built)))
	bars := eval[int](t, browser, `document.querySelectorAll("#gantt rect.bar").length`)
	if bars != built || !eval[bool](t, browser, `window.sameDocument === true`) {
		t.Errorf("the Gantt chart has %d bars, want one for each of the %d steps built, on the page first opened", bars, built)
	}
	if eval[int](t, browser, `document.querySelectorAll("#gantt rect.bar.critical").length`) == 0 {
		t.Error("the Gantt chart marks no critical path")
	}
	// Quality 100 makes a PNG (below it, a JPEG).
	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	buildShot := filepath.Join(artifacts, "dashboard-build.png")
	if err := os.WriteFile(buildShot, shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// The ended step's page: its stored log and its graphs.
	do(t, browser, 30*time.Second, "opening demo-sum's page",
		chromedp.Navigate(base+"/builds/"+id+"/steps/demo-sum"),
		poll(25*time.Second, `document.querySelector("#log.ended") && document.querySelector("svg.profile rect.phase")`))
	logText := eval[string](t, browser, `document.getElementById("log").textContent`)
	phases := eval[int](t, browser, `document.querySelectorAll("svg.profile rect.phase").length`)
	series := eval[int](t, browser, `document.querySelectorAll("svg.profile polyline.cpu, svg.profile polyline.memory").length`)
	if !strings.Contains(logText, "dashboard-tick 8") {
		t.Errorf("demo-sum's stored log on its page lacks its last line:\n%s", logText)
	}
	if phases < 2 || series != 2 {
		t.Errorf("demo-sum's graphs: %d phases and %d CPU and memory series, want its phases and both series", phases, series)
	}
	if shot, err = chromedp.Run(browser, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	stepShot := filepath.Join(artifacts, "dashboard-step.png")
	if err := os.WriteFile(stepShot, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s and %s", buildShot, stepShot)
}
