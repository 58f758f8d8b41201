package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
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
	for _, want := range []string{"in index order", "start-up", "burst", "20ms:100ms", "haproxy", "nested", "directory", "p50 ms", "etcd B/change",
		"idle", "interval 1s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &stdout)
		}
	}
}

// TestLoadOps puts the keys of a keyspace in the order asked for: every
// key once, /app/servers before /svc, by index or shuffled the same way
// every time.
func TestLoadOps(t *testing.T) {
	ks := makeKeyspace(300)
	keys := func(order string) []string {
		var out []string
		for _, op := range loadOps(ks, order) {
			out = append(out, string(op.KeyBytes())+"="+string(op.ValueBytes()))
		}
		return out
	}
	index := keys(orderIndex)
	if len(index) != 600 {
		t.Fatalf("%d puts, want 600", len(index))
	}
	for _, tc := range []struct {
		put  int
		want string
	}{
		{0, "/app/servers/srv-0=" + serverValue(0)},
		{1, "/app/servers/srv-1=" + serverValue(1)},
		{10, "/app/servers/srv-10=" + serverValue(10)},
		{300, "/svc/s0/0=" + serverValue(0)},
		{301, "/svc/s1/0=" + serverValue(1)},
	} {
		if got := index[tc.put]; got != tc.want {
			t.Errorf("index order: put %d is %s, want %s", tc.put, got, tc.want)
		}
	}
	random := keys(orderRandom)
	if slices.Equal(random, index) {
		t.Error("random order is the index order")
	}
	if again := keys(orderRandom); !slices.Equal(again, random) {
		t.Error("random order differs between two calls")
	}
	for i, k := range random {
		if strings.HasPrefix(k, "/svc/") != (i >= 300) {
			t.Errorf("random order: put %d is %s", i, k)
		}
	}
	slices.Sort(random)
	slices.Sort(index)
	if !slices.Equal(random, index) {
		t.Error("random order puts other keys than index order")
	}
}
