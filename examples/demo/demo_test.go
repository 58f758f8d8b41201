package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// buildConfd builds cmd/confd into a temporary directory.
func buildConfd(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "confd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "../../cmd/confd").CombinedOutput()
	if err != nil {
		t.Fatalf("build confd: %v\n%s", err, out)
	}
	return bin
}

// fakeHaproxy writes an executable haproxy into dir that appends its
// arguments to log and then accepts a file that exists, or rejects
// everything.
func fakeHaproxy(t *testing.T, dir, log string, accept bool) {
	t.Helper()
	verdict := `[ -f "$3" ] || exit 3
echo "Configuration file is valid"`
	if !accept {
		verdict = `echo "[ALERT] rejected by the test" >&2
exit 1`
	}
	script := "#!/bin/sh\necho \"$@\" >> '" + log + "'\n" + verdict + "\n"
	if err := os.WriteFile(filepath.Join(dir, "haproxy"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestDemo(t *testing.T) {
	confd := buildConfd(t)
	rendered := []string{
		"server cocky_morse 192.168.1.22:49156 check",
		"server goofy_goldstine 192.168.1.22:49158 check",
		"server prickly_blackwell 192.168.1.22:49154 check",
	}
	// The daemon's part: it writes the file again, follows one server
	// coming and one going, and exits 0 on SIGTERM.
	daemonOut := []string{
		"$ " + confd + " -watch -backend etcdv3 -node 127.0.0.1:",
		"/out/haproxy.cfg after ",
		"put /app/servers/sleepy_turing = 192.168.1.22:49160",
		"--- haproxy.cfg (before)\n+++ haproxy.cfg (after)\n",
		"\n+    server sleepy_turing 192.168.1.22:49160 check inter 5000 fall 1 rise 2\n",
		"delete /app/servers/cocky_morse",
		"\n-    server cocky_morse 192.168.1.22:49156 check inter 5000 fall 1 rise 2\n",
		"==> stopping confd with SIGTERM",
		"confd exited with status 0",
	}
	daemonErr := []string{
		"msg=started backend=etcdv3 mode=watch resources=1",
		"revision=5", // the put
		"revision=6", // the delete
		"level=info msg=stopped",
	}
	tests := []struct {
		name      string
		haproxy   string // "", "accept" or "reject"
		canceled  bool
		wantCode  int
		wantOut   []string
		wantErr   []string
		wantCalls int // runs of haproxy
		noDaemon  bool
	}{
		{
			name:     "without haproxy",
			wantCode: exitOK,
			wantOut: append([]string{
				"==> starting etcd",
				"==> registering 3 servers under /app/servers",
				"reload_cmd dropped, check_cmd dropped (haproxy is not installed)",
				"==> done",
				"$ " + confd + " -onetime -backend etcdv3 -node 127.0.0.1:",
				"/out/haproxy.cfg, rendered from haproxy.toml:",
				"haproxy is not installed, so the check was skipped (apt-get install haproxy to enable it)",
			}, append(rendered, daemonOut...)...),
			wantErr: append([]string{"level=info msg=updated"}, daemonErr...),
		},
		{
			name:     "haproxy accepts",
			haproxy:  "accept",
			wantCode: exitOK,
			wantOut: append([]string{
				"reload_cmd dropped, check_cmd kept",
				"==> checking it: haproxy -c -f ",
				"Configuration file is valid",
				"haproxy accepts it",
			}, rendered...),
			// onetime: confd's check_cmd and the demo's check; then the
			// daemon's check_cmd for the first render, the put and the
			// delete.
			wantCalls: 5,
		},
		{
			name:      "haproxy rejects",
			haproxy:   "reject",
			wantCode:  exitFailure,
			wantOut:   []string{"check_cmd kept"},
			wantErr:   []string{"rejected by the test", "demo: run confd: confd: exit status 1"},
			wantCalls: 1,
			noDaemon:  true,
		},
		{
			name:     "interrupted",
			canceled: true,
			wantCode: exitFailure,
			wantErr:  []string{"demo: interrupted"},
			noDaemon: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pathDir, logDir, tmp := t.TempDir(), t.TempDir(), t.TempDir()
			log := filepath.Join(logDir, "haproxy.log")
			if tt.haproxy != "" {
				fakeHaproxy(t, pathDir, log, tt.haproxy == "accept")
			}
			// Only the fake haproxy, if any, is on PATH, and every
			// temporary file goes below tmp.
			t.Setenv("PATH", pathDir)
			t.Setenv("TMPDIR", tmp)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if tt.canceled {
				cancel()
			}
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"-confd", confd, "-confdir-src", "../.."}, &stdout, &stderr)
			t.Logf("stdout:\n%s\nstderr:\n%s", &stdout, &stderr)

			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q", want)
				}
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			if started := strings.Contains(stdout.String(), "-watch"); started == tt.noDaemon {
				t.Errorf("daemon started: %v, want %v", started, !tt.noDaemon)
			}
			calls := 0
			if b, err := os.ReadFile(log); err == nil {
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					if !strings.HasPrefix(line, "-c -f "+tmp) {
						t.Errorf("haproxy ran with %q, want -c -f <file below %s>", line, tmp)
					}
					calls++
				}
			}
			if calls != tt.wantCalls {
				t.Errorf("haproxy ran %d times, want %d", calls, tt.wantCalls)
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"-nope"}, exitUsage, "flag provided but not defined: -nope"},
		{"arguments", []string{"extra"}, exitUsage, `unexpected arguments ["extra"]`},
		{"no binary", []string{"-confd", filepath.Join(t.TempDir(), "confd")}, exitFailure, "build it with 'make build' or pass -confd"},
		{"help", []string{"-h"}, exitOK, "-confdir-src directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestRewriteResource(t *testing.T) {
	const haproxy = `[template]
src = "haproxy.cfg.tmpl"
dest = "/etc/haproxy/haproxy.cfg"
keys = ["/app/servers"]
mode = "0644"
check_cmd = "haproxy -c -f {{.src}}"
reload_cmd = "systemctl reload haproxy"
`
	tests := []struct {
		name      string
		in        string
		installed bool
		want      map[string]any // the [template] table
		wantRes   rewritten
		wantErr   string
	}{
		{
			name:      "check program installed",
			in:        haproxy,
			installed: true,
			want: map[string]any{
				"src": "haproxy.cfg.tmpl", "dest": "/out/haproxy.cfg", "keys": []any{"/app/servers"},
				"mode": "0644", "check_cmd": "haproxy -c -f {{.src}}",
			},
			wantRes: rewritten{origDest: "/etc/haproxy/haproxy.cfg", dest: "/out/haproxy.cfg", checkProgram: "haproxy", checkKept: true},
		},
		{
			name: "check program missing",
			in:   haproxy,
			want: map[string]any{
				"src": "haproxy.cfg.tmpl", "dest": "/out/haproxy.cfg", "keys": []any{"/app/servers"}, "mode": "0644",
			},
			wantRes: rewritten{origDest: "/etc/haproxy/haproxy.cfg", dest: "/out/haproxy.cfg", checkProgram: "haproxy"},
		},
		{
			name:      "no commands",
			in:        "[template]\nsrc = \"a.tmpl\"\ndest = \"/srv/a.conf\"\nkeys = [\"/a\", \"/b\"]\nprefix = \"p\"\n",
			installed: true,
			want: map[string]any{
				"src": "a.tmpl", "dest": "/out/a.conf", "keys": []any{"/a", "/b"}, "prefix": "p",
			},
			wantRes: rewritten{origDest: "/srv/a.conf", dest: "/out/a.conf"},
		},
		{name: "no template table", in: "src = \"a.tmpl\"\n", wantErr: "no [template] table"},
		{name: "no dest", in: "[template]\nsrc = \"a.tmpl\"\n", wantErr: "no dest in [template]"},
		{name: "not toml", in: "[template\n", wantErr: "toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			installed := func(program string) bool {
				asked = append(asked, program)
				return tt.installed
			}
			out, res, err := rewriteResource([]byte(tt.in), "/out", installed)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("rewriteResource: %v", err)
			}
			if res != tt.wantRes {
				t.Errorf("result = %+v, want %+v", res, tt.wantRes)
			}
			if tt.wantRes.checkProgram != "" && !reflect.DeepEqual(asked, []string{tt.wantRes.checkProgram}) {
				t.Errorf("asked whether %q is installed, want %q", asked, tt.wantRes.checkProgram)
			}
			var doc map[string]any
			if _, err := toml.Decode(string(out), &doc); err != nil {
				t.Fatalf("decode the rewritten resource: %v\n%s", err, out)
			}
			if got := doc["template"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("[template] = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestPrepareConfdir(t *testing.T) {
	src, work := t.TempDir(), t.TempDir()
	files := map[string]string{
		"conf.d/a.toml":         "[template]\nsrc = \"a.tmpl\"\ndest = \"/etc/a.conf\"\nkeys = [\"/a\"]\nreload_cmd = \"true\"\n",
		"conf.d/b.toml":         "[template]\nsrc = \"sub/b.tmpl\"\ndest = \"/etc/b/b.conf\"\nkeys = [\"/b\"]\n",
		"conf.d/notes.txt":      "not a resource",
		"templates/a.tmpl":      "a {{getv \"/a\"}}\n",
		"templates/sub/b.tmpl":  "b\n",
		"templates/sub/c.extra": "c\n",
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	confdir, out := filepath.Join(work, "confd"), filepath.Join(work, "out")
	got, err := prepareConfdir(src, confdir, out, func(string) bool { return false })
	if err != nil {
		t.Fatalf("prepareConfdir: %v", err)
	}
	want := []rewritten{
		{name: "a.toml", origDest: "/etc/a.conf", dest: filepath.Join(out, "a.conf")},
		{name: "b.toml", origDest: "/etc/b/b.conf", dest: filepath.Join(out, "b.conf")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resources = %+v\nwant %+v", got, want)
	}
	for _, name := range []string{"templates/a.tmpl", "templates/sub/b.tmpl", "templates/sub/c.extra"} {
		b, err := os.ReadFile(filepath.Join(confdir, name))
		if err != nil {
			t.Errorf("copy of %s: %v", name, err)
			continue
		}
		if string(b) != files[name] {
			t.Errorf("copy of %s = %q, want %q", name, b, files[name])
		}
	}
	entries, err := os.ReadDir(filepath.Join(confdir, "conf.d"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"a.toml", "b.toml"}; !reflect.DeepEqual(names, want) {
		t.Errorf("conf.d holds %v, want %v", names, want)
	}
}

func TestPrepareConfdirErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"no resources", map[string]string{"templates/a.tmpl": "a"}, "no template resources in"},
		{"same dest", map[string]string{
			"conf.d/a.toml":    "[template]\nsrc = \"a.tmpl\"\ndest = \"/etc/x/app.conf\"\n",
			"conf.d/b.toml":    "[template]\nsrc = \"a.tmpl\"\ndest = \"/etc/y/app.conf\"\n",
			"templates/a.tmpl": "a",
		}, "a.toml writes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, work := t.TempDir(), t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(src, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := prepareConfdir(src, filepath.Join(work, "confd"), filepath.Join(work, "out"), func(string) bool { return true })
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	exited := make(chan struct{})
	close(exited)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		exited    <-chan struct{}
		readyAt   int   // call on which check reports true; 0 never
		checkErr  error // returned by every call
		wantErr   string
		wantCalls int // 0: any
	}{
		{name: "ready at once", readyAt: 1, wantCalls: 1},
		{name: "ready later", readyAt: 3, wantCalls: 3},
		{name: "check fails", checkErr: errors.New("unreadable"), wantErr: "wait for the file: unreadable", wantCalls: 1},
		{name: "never ready", wantErr: "wait for the file: nothing after 200ms"},
		{name: "daemon exited", exited: exited, wantErr: "wait for the file: confd exited", wantCalls: 1},
		{name: "interrupted", ctx: canceled, wantErr: "wait for the file: context canceled", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			calls := 0
			start := time.Now()
			err := waitFor(ctx, 200*time.Millisecond, tt.exited, "the file", func() (bool, error) {
				calls++
				return calls == tt.readyAt, tt.checkErr
			})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("waitFor: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("waitFor: %v, want %q", err, tt.wantErr)
			}
			if tt.wantCalls != 0 && calls != tt.wantCalls {
				t.Errorf("check called %d times, want %d", calls, tt.wantCalls)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("waitFor took %s", d)
			}
		})
	}
}

func TestDaemonStop(t *testing.T) {
	tests := []struct {
		name      string
		script    string // run by sh; it touches $READY once it can take signals
		exitFirst bool   // wait for the script to exit before stop
		wantCode  int
		wantErr   string
	}{
		{
			name:     "exits on SIGTERM",
			script:   `trap 'exit 0' TERM; touch "$READY"; while :; do sleep 0.05; done`,
			wantCode: 0,
		},
		{
			name:     "fails on SIGTERM",
			script:   `trap 'exit 4' TERM; touch "$READY"; while :; do sleep 0.05; done`,
			wantCode: 4,
		},
		{
			name:    "ignores SIGTERM",
			script:  `trap '' TERM; touch "$READY"; exec sleep 30`,
			wantErr: "did not exit within 300ms of SIGTERM; killed it",
		},
		{
			name:      "already exited",
			script:    `touch "$READY"; exit 3`,
			exitFirst: true,
			wantCode:  3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready := filepath.Join(t.TempDir(), "ready")
			cmd := exec.Command("/bin/sh", "-c", tt.script)
			cmd.Env = append(os.Environ(), "READY="+ready)
			p, err := spawn(cmd)
			if err != nil {
				t.Fatal(err)
			}
			err = waitFor(context.Background(), 10*time.Second, nil, "the script", func() (bool, error) {
				_, err := os.Stat(ready)
				return err == nil, nil
			})
			if err != nil {
				p.stop(time.Second)
				t.Fatal(err)
			}
			if tt.exitFirst {
				<-p.done
			}
			code, err := p.stop(300 * time.Millisecond)
			if !p.exited() {
				t.Error("stop returned before the process exited")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("stop: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("stop: %v", err)
			}
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
		})
	}
}
