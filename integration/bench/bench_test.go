package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the benchmark's etcd process,
// as the benchmark's own binary does.
func TestMain(m *testing.M) {
	if dir := os.Getenv(serveEtcdEnv); dir != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		code := serveEtcd(ctx, dir, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole benchmark at a tiny size, so that it keeps
// working; its figures mean nothing.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "confd")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/confd").CombinedOutput(); err != nil {
		t.Fatalf("build confd: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-confd", bin, "-sizes", "200", "-watch-sizes", "200", "-runs", "1", "-changes", "3",
		"-startup-keys", "5", "-burst-keys", "200", "-burst-puts", "30", "-burst-runs", "1", "-burst-wait", "20ms:100ms",
		"-idle", "1s", "-idle-keys", "200", "-json", filepath.Join(dir, "out.json")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	for _, want := range []string{"start-up", "burst", "20ms:100ms", "haproxy", "nested", "directory", "p50 ms", "etcd B/change",
		"idle", "interval 1s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &stdout)
		}
	}
}
