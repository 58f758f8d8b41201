package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
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
	for _, want := range []string{"in index order", "start-up", "burst", "20ms:100ms", "haproxy", "nested", "directory", "p50 ms", "mean ms", "etcd B/change", "flushes/chg", "discards/chg",
		"idle", "interval 1s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &stdout)
		}
	}
}

// TestLoadOps puts the keys of a keyspace in the order asked for: each
// key once with its value, /app/servers before /svc, by number or
// shuffled the same way every time.
func TestLoadOps(t *testing.T) {
	const n = 300
	ks := makeKeyspace(n)
	want := map[string]string{}
	for name, v := range ks.servers {
		want["/app/servers/"+name] = v
	}
	for dir, m := range ks.svc {
		for name, v := range m {
			want["/svc/"+dir+"/"+name] = v
		}
	}
	puts := map[string][]string{}
	for _, order := range []string{orderIndex, orderRandom, orderRandom} {
		var keys []string
		got := map[string]string{}
		for i, op := range loadOps(ks, order) {
			k := string(op.KeyBytes())
			if _, dup := got[k]; dup {
				t.Fatalf("%s order puts %s twice", order, k)
			}
			got[k] = string(op.ValueBytes())
			if strings.HasPrefix(k, "/svc/") != (i >= n) {
				t.Errorf("%s order: put %d is %s, want /app/servers first, then /svc", order, i, k)
			}
			keys = append(keys, k)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s order puts other keys or values than the keyspace holds", order)
		}
		if prev, ok := puts[order]; ok && !slices.Equal(prev, keys) {
			t.Errorf("%s order differs between two calls", order)
		}
		puts[order] = keys
	}
	for _, tc := range []struct {
		put  int
		want string
	}{
		{0, "/app/servers/srv-0"},
		{1, "/app/servers/srv-1"},
		{10, "/app/servers/srv-10"},
		{n, "/svc/s0/0"},
		{n + 1, "/svc/s0/1"},
		{n + 3, "/svc/s1/0"},
	} {
		if got := puts[orderIndex][tc.put]; got != tc.want {
			t.Errorf("index order: put %d is %s, want %s", tc.put, got, tc.want)
		}
	}
	if slices.Equal(puts[orderRandom], puts[orderIndex]) {
		t.Error("random order is the index order")
	}
}

// TestParseLoadOrder accepts the two load orders and nothing else.
func TestParseLoadOrder(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{nil, orderIndex, false},
		{[]string{"-load-order", "random"}, orderRandom, false},
		{[]string{"-load-order", "index"}, orderIndex, false},
		{[]string{"-load-order", "sorted"}, "", true},
	} {
		o, err := parse(tc.args, io.Discard)
		if (err != nil) != tc.wantErr {
			t.Errorf("parse(%q): error %v, want error %t", tc.args, err, tc.wantErr)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "-load-order") {
				t.Errorf("parse(%q): error %q does not name -load-order", tc.args, err)
			}
			continue
		}
		if o.loadOrder != tc.want {
			t.Errorf("parse(%q): load order %q, want %q", tc.args, o.loadOrder, tc.want)
		}
	}
}

// TestParseDiskStat reads the write, discard and flush counts of a block
// device's stat file, and nothing from a kernel that does not count flushes.
func TestParseDiskStat(t *testing.T) {
	tests := []struct {
		name, text string
		want       *disk // nil: no counters
	}{
		{"linux 5.5 and later", "3341163 545064 100683082 5861057 5029032 829742 145484144 2267146 0 2634208 9584503 1176566 4484 2508995704 1211741 1483264 244558\n",
			&disk{writes: 5029032, discards: 1176566, flushes: 1483264}},
		{"no flush counts", "3341163 545064 100683082 5861057 5029032 829742 145484144 2267146 0 2634208 9584503\n", nil},
		{"not numbers", "a b c d e f g h i j k l m n o p q\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseDiskStat(tt.text); (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Errorf("parseDiskStat = %+v, want %+v", got, tt.want)
			}
		})
	}
}
