package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// The nginx example under test: its resource, template, site and check
// script are used as they are, with the paths pointed at a test instance.
const nginxExample = "../examples/nginx"

// nginxBin returns the nginx binary: from PATH, else /usr/sbin/nginx (not
// in the PATH of users other than root on Debian). Without one the test
// fails when CI is set and is skipped otherwise (requireProgram).
func nginxBin(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx"
		}
	}
	return requireProgram(t, "nginx")
}

// nginxScript is the absolute path of the example's check script.
func nginxScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(nginxExample, "nginx-check-include.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// nginxMainConf is a main nginx.conf that keeps pid, logs and temporary
// files below prefix and does not depend on running as root.
func nginxMainConf(prefix, include string) string {
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
pid %[1]s/logs/nginx.pid;
error_log %[1]s/logs/error.log notice;
events {
    worker_connections 512;
}
http {
    access_log %[1]s/logs/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    %[2]s
}
`, prefix, include)
}

// nginxPrefix makes a prefix directory with logs/ and tmp/.
func nginxPrefix(t *testing.T) string {
	t.Helper()
	prefix := t.TempDir()
	for _, d := range []string{"logs", "tmp", "conf/conf.d"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return prefix
}

// nginxUpstream is what the example template renders for these servers,
// given in the order of their keys.
func nginxUpstream(servers ...string) string {
	var b strings.Builder
	b.WriteString("# Written by confd from the keys /app/upstream/<name> = host:port.\n# Changes made here are overwritten.\nupstream app {\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s;\n", s)
	}
	b.WriteString("    keepalive 16;\n}\n")
	return b.String()
}

// nginxReplace replaces old with new in s and fails when s does not hold
// old, so that a change to the example breaks the test instead of passing
// it unnoticed.
func nginxReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("the example no longer contains %q:\n%s", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

// nginxServer is an nginx master process (with its workers) started by a
// test, in a process group of its own (startGroup), which is ended when
// the test ends.
type nginxServer struct {
	prefix string
	g      *group
}

// startNginx runs nginx in the foreground on prefix/conf/nginx.conf, which
// the caller has written, and waits for its pid file.
func startNginx(t *testing.T, bin, prefix string) *nginxServer {
	t.Helper()
	n := &nginxServer{prefix: prefix}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error.log:\n%s", n.errorLog())
		}
	})
	n.g = startGroup(t, bin, "-p", prefix+"/", "-c", filepath.Join(prefix, "conf", "nginx.conf"))
	pidFile := filepath.Join(prefix, "logs", "nginx.pid")
	want := strconv.Itoa(n.g.cmd.Process.Pid)
	eventually(t, 10*time.Second, "nginx to write its pid file", func() bool {
		if n.g.exited() {
			t.Fatalf("nginx exited at start:\n%s", n.g.out)
		}
		b, _ := os.ReadFile(pidFile)
		return strings.TrimSpace(string(b)) == want
	})
	return n
}

func (n *nginxServer) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.prefix, "logs", "error.log"))
	return string(b)
}

// reloads counts the reloads nginx has logged.
func (n *nginxServer) reloads() int {
	return strings.Count(n.errorLog(), "signal 1 (SIGHUP) received")
}

// errors returns the lines of the error log at level error or worse.
func (n *nginxServer) errors() []string {
	var bad []string
	for _, line := range strings.Split(n.errorLog(), "\n") {
		for _, level := range []string{"[error]", "[crit]", "[alert]", "[emerg]"} {
			if strings.Contains(line, level) {
				bad = append(bad, line)
			}
		}
	}
	return bad
}

// nginxStack is etcd, nginx and confd -watch keeping the upstream of the
// example in step with /app/upstream.
type nginxStack struct {
	cli   *clientv3.Client
	nginx *nginxServer
	confd *daemon
	dest  string // the upstream file confd writes
	url   string // the site, through nginx
}

// startNginxStack sets up the example the way its README does: keys in
// etcd, nginx running, the site installed, then confd, whose first render
// passes the check and reloads nginx into serving the site. kvs are the
// keys to put first.
func startNginxStack(t *testing.T, kvs ...string) *nginxStack {
	t.Helper()
	bin := nginxBin(t)
	e := etcdtest.Start(t)
	s := &nginxStack{cli: e.Client(t)}
	put(t, s.cli, kvs...)

	prefix := nginxPrefix(t)
	conf := filepath.Join(prefix, "conf", "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxMainConf(prefix, "include conf.d/*.conf;")), 0o644); err != nil {
		t.Fatal(err)
	}
	s.nginx = startNginx(t, bin, prefix)

	listen := deadEndpoint(t)
	s.url = "http://" + listen + "/"
	site := nginxReplace(t, readFile(t, filepath.Join(nginxExample, "site", "app.conf")), "listen 8000;", "listen "+listen+";")
	if err := os.WriteFile(filepath.Join(prefix, "conf", "conf.d", "app.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}

	// The example's resource, pointed at this instance.
	res := readFile(t, filepath.Join(nginxExample, "conf.d", "nginx.toml"))
	res = nginxReplace(t, res, "/usr/local/bin/nginx-check-include.sh", nginxScript(t))
	res = nginxReplace(t, res, "{{.dest}} /etc/nginx/nginx.conf", "{{.dest}} "+conf+" "+prefix)
	res = nginxReplace(t, res, `"/etc/nginx/conf.d/app-upstream.conf"`, `"`+filepath.Join(prefix, "conf", "conf.d", "app-upstream.conf")+`"`)
	res = nginxReplace(t, res, `"nginx -s reload"`, `"`+bin+" -p "+prefix+"/ -c "+conf+` -s reload"`)
	dir := t.TempDir()
	for name, content := range map[string]string{
		"conf.d/nginx.toml":            res,
		"templates/upstream.conf.tmpl": readFile(t, filepath.Join(nginxExample, "templates", "upstream.conf.tmpl")),
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.dest = filepath.Join(prefix, "conf", "conf.d", "app-upstream.conf")
	s.confd = startDaemon(t, []string{"NGINX_BIN=" + bin}, "-watch", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir)
	return s
}

// startTraffic sends requests through nginx from four clients at once (see
// startTraffic): two keep their connections open across reloads, two open
// one per request. An answer other than one of names fails.
func (s *nginxStack) startTraffic(t *testing.T, names ...string) *traffic {
	t.Helper()
	return startTraffic(t, s.url, names,
		keepAliveClient(requestTimeout), newConnClient(requestTimeout),
		keepAliveClient(requestTimeout), newConnClient(requestTimeout))
}

// TestNginxTwoPhaseSwitchover moves the site from py1 to py2 in two
// phases, as an operator would: add py2, see both serve, remove py1, see
// only py2 serve, stop py1. Requests flow through nginx all the time, and
// none may fail.
func TestNginxTwoPhaseSwitchover(t *testing.T) {
	py1, py2 := startBackend(t, "py1"), startBackend(t, "py2")
	s := startNginxStack(t, "/app/upstream/py1", py1.addr())
	waitServes(t, s.url, []string{"py1"}, 1, 20*time.Second)
	waitFile(t, s.dest, nginxUpstream(py1.addr()), 5*time.Second)

	load := s.startTraffic(t, "py1", "py2")
	load.waitFor(t, "traffic on py1", 30*time.Second, func(st trafficStats) bool { return st.hits["py1"] >= 200 })

	// Requests that py1 holds open through both reloads: old workers finish
	// them after they stop taking new ones.
	const slowN = 4
	slow := make(chan string, slowN)
	slowClient := newConnClient(40 * time.Second)
	for i := 0; i < slowN; i++ {
		go func() {
			body, _, err := fetch(context.Background(), slowClient, s.url+"slow")
			if err != nil {
				body = err.Error()
			}
			slow <- body
		}()
	}
	t.Cleanup(py1.release) // before nginx is asked to quit, should the test stop early
	eventually(t, 10*time.Second, "py1 to hold the slow requests", func() bool { return py1.held.Load() == slowN })

	// Phase 1: add py2; both serve.
	added := time.Now()
	put(t, s.cli, "/app/upstream/py2", py2.addr())
	st := load.waitFor(t, "traffic on py2", 30*time.Second, func(st trafficStats) bool { return st.hits["py2"] >= 50 })
	both := st.hits
	load.waitFor(t, "traffic on both", 30*time.Second, func(st trafficStats) bool {
		return st.hits["py1"] >= both["py1"]+50 && st.hits["py2"] >= both["py2"]+50
	})
	waitFile(t, s.dest, nginxUpstream(py1.addr(), py2.addr()), 5*time.Second)
	inAfter := st.first["py2"].Sub(added)

	// Phase 2: remove py1; only py2 serves.
	removed := time.Now()
	deleteKey(t, s.cli, "/app/upstream/py1")
	st = load.waitFor(t, "traffic on py2 only", 30*time.Second, func(st trafficStats) bool {
		return st.lastName == "py2" && st.streak >= 500
	})
	waitFile(t, s.dest, nginxUpstream(py2.addr()), 5*time.Second)
	outAfter := st.last["py1"].Sub(removed)
	py1.release()
	for i := 0; i < slowN; i++ {
		select {
		case body := <-slow:
			if body != "py1" {
				t.Errorf("a request held open across the reloads got %q, want py1", body)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the requests held open across the reloads did not complete")
		}
	}

	// py1 goes away, as its container would; nothing notices.
	py1.srv.Close()
	gone := st.hits["py1"]
	st = load.waitFor(t, "more traffic after py1 stopped", 30*time.Second, func(st trafficStats) bool {
		return st.hits["py2"] >= both["py2"]+1500 || st.lastName != "py2"
	})
	final := load.stop()

	t.Logf("sent %d requests, %d failed (%d sent again by the client after nginx closed a kept-alive connection); py1 answered %d, py2 %d; py2 first answered %s after its key was put, py1 last answered %s after its key was deleted; %d requests held open across both reloads completed; nginx reloaded %d times",
		final.sent, final.failed, final.resent, final.hits["py1"], final.hits["py2"], inAfter.Round(time.Millisecond), outAfter.Round(time.Millisecond), slowN, s.nginx.reloads())
	if final.failed != 0 {
		t.Errorf("%d of %d requests failed, want 0; first failures: %q", final.failed, final.sent, load.failures())
	}
	if st.lastName != "py2" || final.hits["py1"] != gone {
		t.Errorf("traffic did not stay on py2 after the switchover: %s", final)
	}
	if final.streak < 1000 {
		t.Errorf("the last %d responses came from %q, want at least 1000 from py2 in a row", final.streak, final.lastName)
	}
	if got := s.nginx.reloads(); got != 3 {
		t.Errorf("nginx reloaded %d times, want 3 (first render, add py2, remove py1)", got)
	}
	if bad := s.nginx.errors(); len(bad) > 0 {
		t.Errorf("nginx logged errors:\n%s", strings.Join(bad, "\n"))
	}
	assertNoStageFiles(t, filepath.Dir(s.dest))
}

// TestNginxRejectsBrokenUpstream puts values nginx cannot use: the check
// (or the template) rejects them, the upstream file stays as it was, nginx
// is not reloaded and serves on; fixing the key recovers.
func TestNginxRejectsBrokenUpstream(t *testing.T) {
	py1, py2 := startBackend(t, "py1"), startBackend(t, "py2")
	s := startNginxStack(t, "/app/upstream/py1", py1.addr())
	waitServes(t, s.url, []string{"py1"}, 1, 20*time.Second)
	good := nginxUpstream(py1.addr())
	waitFile(t, s.dest, good, 5*time.Second)
	info, err := os.Stat(s.dest)
	if err != nil {
		t.Fatal(err)
	}
	reloads := s.nginx.reloads()
	load := s.startTraffic(t, "py1", "py2")

	steps := []struct {
		name, value, log string
	}{
		// An IP literal with a port out of range: rendered, refused by
		// nginx -t through the check script.
		{"bad port", "127.0.0.1:99999", `invalid port in upstream \"127.0.0.1:99999\"`},
		// A value that would close the upstream block: refused by the
		// template before anything is written.
		{"injection", "127.0.0.1:1; } server { listen 127.0.0.1:1; }", "is not an nginx server address"},
	}
	for _, step := range steps {
		before := load.mark()
		put(t, s.cli, "/app/upstream/bad", step.value)
		s.confd.waitLog(t, step.log, 15*time.Second)
		load.waitFor(t, "requests after the rejection", 30*time.Second, func(st trafficStats) bool { return st.sent >= before+200 })
		if got := readFile(t, s.dest); got != good {
			t.Errorf("%s: the upstream file changed:\n%s", step.name, got)
		}
		if now, err := os.Stat(s.dest); err != nil || !now.ModTime().Equal(info.ModTime()) {
			t.Errorf("%s: the upstream file was rewritten (%v)", step.name, err)
		}
		if got := s.nginx.reloads(); got != reloads {
			t.Errorf("%s: nginx reloaded %d times, want %d", step.name, got, reloads)
		}
		assertNoStageFiles(t, filepath.Dir(s.dest))
	}
	if st := load.stats(0, -1); st.hits["py2"] != 0 || st.failed != 0 {
		t.Errorf("while the key was broken: %s, want every request served by py1", st)
	}
	logs := s.confd.out.String()
	if !strings.Contains(logs, "check failed") || !strings.Contains(logs, "render failed") {
		t.Errorf("confd did not log both the failed check and the failed render:\n%s", logs)
	}

	// Fixing the key recovers: py2 joins.
	put(t, s.cli, "/app/upstream/bad", py2.addr())
	waitFile(t, s.dest, nginxUpstream(py2.addr(), py1.addr()), 15*time.Second)
	load.waitFor(t, "traffic on py2 after the fix", 30*time.Second, func(st trafficStats) bool { return st.hits["py2"] >= 50 })
	final := load.stop()
	t.Logf("sent %d requests, %d failed (%d sent again by the client after nginx closed a kept-alive connection); py1 answered %d, py2 %d; nginx reloaded %d times",
		final.sent, final.failed, final.resent, final.hits["py1"], final.hits["py2"], s.nginx.reloads())
	if final.failed != 0 {
		t.Errorf("%d of %d requests failed, want 0; first failures: %q", final.failed, final.sent, load.failures())
	}
	if got := s.nginx.reloads(); got != reloads+1 {
		t.Errorf("nginx reloaded %d times in all, want %d", got, reloads+1)
	}
}

// TestNginxExampleRenders renders the example's template from its keys
// file with the file backend, as its README shows.
func TestNginxExampleRenders(t *testing.T) {
	res := readFile(t, filepath.Join(nginxExample, "conf.d", "nginx.toml"))
	dir, out := confDir(t, map[string]string{
		"conf.d/nginx.toml":            nginxReplace(t, res, "/etc/nginx/conf.d/", "DEST/"),
		"templates/upstream.conf.tmpl": readFile(t, filepath.Join(nginxExample, "templates", "upstream.conf.tmpl")),
	})
	r := runConfd(t, nil, "-onetime", "-sync-only", "-backend", "file", "-file", filepath.Join(nginxExample, "keys.yaml"), "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("confd exited %d, want 0", r.code)
	}
	if got, want := readFile(t, filepath.Join(out, "app-upstream.conf")), nginxUpstream("127.0.0.1:8001", "127.0.0.1:8002"); got != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}
}
