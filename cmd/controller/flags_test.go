package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAFlagMistakeIsSaidNotSwallowed(t *testing.T) {
	code, _, stderr := runBinary(t, controllerBinary(t), "--state-dir", t.TempDir(), "--lissten", "1")
	if code != 2 || !strings.Contains(stderr, "unknown flag: --lissten") || !strings.Contains(stderr, "controller --help") {
		t.Errorf("exit %d, stderr %q; want 2 and the unknown flag named, with where to look", code, stderr)
	}
}

func TestSettingsComeFromAConfigFileAndTheCommandLineWins(t *testing.T) {
	bin := controllerBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "controller.yaml")
	if err := os.WriteFile(cfg, []byte("state-dir: "+filepath.Join(dir, "state")+"\npolicy: nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The file's settings are used: its bad policy is refused...
	if code, _, stderr := runBinary(t, bin, "--config", cfg); code != 2 || !strings.Contains(stderr, `unknown --policy "nonsense"`) {
		t.Errorf("a bad policy from the file: exit %d, stderr %q; want it refused", code, stderr)
	}
	// ...unless the command line sets it, which wins: the next check
	// (the log level) is then the one that fails.
	code, _, stderr := runBinary(t, bin, "--config", cfg, "--policy", "fifo", "--log-level", "nonsense")
	if code != 2 || !strings.Contains(stderr, `unknown --log-level "nonsense"`) {
		t.Errorf("--policy on the command line over the file's: exit %d, stderr %q; want the policy accepted", code, stderr)
	}
}

func TestVersionSaysWhatWasBuilt(t *testing.T) {
	code, stdout, _ := runBinary(t, controllerBinary(t), "--version")
	if code != 0 || !strings.HasPrefix(stdout, "controller ") {
		t.Errorf("--version: exit %d, %q; want the version on stdout", code, stdout)
	}
}

func TestAListenerBeyondLoopbackWithoutTLSOrAuthIsWarnedAbout(t *testing.T) {
	bin := controllerBinary(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--state-dir", filepath.Join(dir, "state"), "--cache", "127.0.0.1:1", "--http-listen", "",
		"--listen", "0.0.0.0:0", "--worker-listen", "127.0.0.1:0")
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var log string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !strings.Contains(log, "listening:"); time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(logPath)
		log = string(data)
	}
	time.Sleep(100 * time.Millisecond) // the warnings follow the listening line
	data, _ := os.ReadFile(logPath)
	log = string(data)
	if strings.Count(log, "a gRPC listener is exposed") != 1 || strings.Contains(log, "listening on 127.0.0.1") || !strings.Contains(log, "--require-auth") {
		t.Errorf("want one warning, for the listener on every interface only; log:\n%s", log)
	}
}

func TestWorkersDrainAsksTheRunningController(t *testing.T) {
	bin := controllerBinary(t)
	addrs := startController(t, bin, "--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0")
	code, _, stderr := runBinary(t, bin, "workers", "drain", "w9", "--controller", addrs.GRPC)
	if code != 1 || !strings.Contains(stderr, `no worker named "w9" is connected`) {
		t.Errorf("draining a worker that is not connected: exit %d, stderr %q; want 1 and the controller's answer", code, stderr)
	}
	if code, _, _ := runBinary(t, bin, "workers", "drain"); code != 2 {
		t.Errorf("no worker named: exit %d, want 2", code)
	}
}
