package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// nginxBackend is an HTTP server on 127.0.0.1 that answers with its name.
// Requests for /slow are held until release is called (at most 30 s).
type nginxBackend struct {
	name    string
	srv     *httptest.Server
	held    atomic.Int32 // /slow requests that have arrived
	hold    chan struct{}
	release func()
}

func startNginxBackend(t *testing.T, name string) *nginxBackend {
	t.Helper()
	b := &nginxBackend{name: name, hold: make(chan struct{})}
	var once sync.Once
	b.release = func() { once.Do(func() { close(b.hold) }) }
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.held.Add(1)
			select {
			case <-b.hold:
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	t.Cleanup(b.release) // runs first
	return b
}

func (b *nginxBackend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

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

// waitServing waits until a request through nginx is answered by name.
func (s *nginxStack) waitServing(t *testing.T, name string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	eventually(t, 20*time.Second, "nginx to serve "+name, func() bool {
		resp, err := client.Get(s.url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK && string(b) == name
	})
}

// nginxLoadStats is what the load has seen so far.
type nginxLoadStats struct {
	sent, failed int
	retried      int                  // sent again on a new connection by the client
	hits         map[string]int       // responses by backend name
	first, last  map[string]time.Time // first and last response by backend
	lastName     string               // the backend of the latest response
	streak       int                  // responses in a row from lastName
	errs         []string             // the first failures
	over         string               // why the load stopped on its own
}

func (s nginxLoadStats) String() string {
	return fmt.Sprintf("sent %d, failed %d, retried %d, hits %v, streak %d of %q, stopped: %q, first failures: %q",
		s.sent, s.failed, s.retried, s.hits, s.streak, s.lastName, s.over, s.errs)
}

// nginxLoad sends GET requests through nginx, from four clients at once
// (two keeping connections open, two opening one per request), until it is
// stopped, has sent max requests or has run for maxDur. A request fails
// when it gets no response, a status other than 200 or a body other than
// one of the backend names.
type nginxLoad struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	st       nginxLoadStats
	inflight int
	names    map[string]bool
}

func startNginxLoad(t *testing.T, url string, max int, maxDur time.Duration, names ...string) *nginxLoad {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	l := &nginxLoad{cancel: cancel, names: map[string]bool{},
		st: nginxLoadStats{hits: map[string]int{}, first: map[string]time.Time{}, last: map[string]time.Time{}}}
	for _, n := range names {
		l.names[n] = true
	}
	for i := 0; i < 4; i++ {
		tr := &http.Transport{DisableKeepAlives: i%2 == 1, MaxIdleConnsPerHost: 1}
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			l.run(ctx, client, url, max)
		}()
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *nginxLoad) run(ctx context.Context, client *http.Client, url string, max int) {
	for {
		if !l.reserve(ctx, max) {
			return
		}
		body, conns, err := nginxGet(ctx, client, url)
		if err == nil && !l.names[body] {
			err = fmt.Errorf("unexpected body %q", body)
		}
		l.record(ctx, body, conns > 1, err)
	}
}

// nginxGet sends one GET and returns the body and the number of
// connections the client used for it: more than one when it sent the
// request again because the server had closed a kept-alive connection.
func nginxGet(ctx context.Context, client *http.Client, url string) (string, int, error) {
	conns := 0
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns++ }})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", conns, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", conns, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", conns, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", conns, fmt.Errorf("status %s: %.200s", resp.Status, b)
	}
	return string(b), conns, nil
}

// reserve takes a slot for one more request, if the limits allow it.
func (l *nginxLoad) reserve(ctx context.Context, max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.st.over != "":
		return false
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		l.st.over = "time limit"
		return false
	case ctx.Err() != nil:
		return false
	case l.st.sent+l.inflight >= max:
		l.st.over = fmt.Sprintf("%d requests sent", max)
		return false
	}
	l.inflight++
	return true
}

func (l *nginxLoad) record(ctx context.Context, body string, retried bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if err != nil && ctx.Err() != nil {
		return // cut short by stop: not a request that was answered
	}
	l.st.sent++
	if retried {
		l.st.retried++
	}
	if err != nil {
		l.st.failed++
		if len(l.st.errs) < 5 {
			l.st.errs = append(l.st.errs, err.Error())
		}
		l.st.lastName, l.st.streak = "", 0
		return
	}
	now := time.Now()
	l.st.hits[body]++
	if l.st.first[body].IsZero() {
		l.st.first[body] = now
	}
	l.st.last[body] = now
	if body == l.st.lastName {
		l.st.streak++
	} else {
		l.st.lastName, l.st.streak = body, 1
	}
}

// stats returns a copy of the stats.
func (l *nginxLoad) stats() nginxLoadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.st
	s.hits, s.first, s.last = map[string]int{}, map[string]time.Time{}, map[string]time.Time{}
	for k, v := range l.st.hits {
		s.hits[k] = v
	}
	for k, v := range l.st.first {
		s.first[k] = v
	}
	for k, v := range l.st.last {
		s.last[k] = v
	}
	s.errs = append([]string(nil), l.st.errs...)
	return s
}

// waitFor polls the stats until cond holds; it fails the test when timeout
// passes or the load stops on its own first.
func (l *nginxLoad) waitFor(t *testing.T, what string, timeout time.Duration, cond func(nginxLoadStats) bool) nginxLoadStats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := l.stats()
		if cond(s) {
			return s
		}
		if s.over != "" || time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up (%s)", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the load, waits for its clients and returns the stats.
func (l *nginxLoad) stop() nginxLoadStats {
	l.cancel()
	l.wg.Wait()
	return l.stats()
}

// TestNginxTwoPhaseSwitchover moves the site from py1 to py2 in two
// phases, as an operator would: add py2, see both serve, remove py1, see
// only py2 serve, stop py1. Requests flow through nginx all the time, and
// none may fail.
func TestNginxTwoPhaseSwitchover(t *testing.T) {
	py1, py2 := startNginxBackend(t, "py1"), startNginxBackend(t, "py2")
	s := startNginxStack(t, "/app/upstream/py1", py1.addr())
	s.waitServing(t, "py1")
	waitFile(t, s.dest, nginxUpstream(py1.addr()), 5*time.Second)

	load := startNginxLoad(t, s.url, 20000, 60*time.Second, "py1", "py2")
	load.waitFor(t, "traffic on py1", 10*time.Second, func(st nginxLoadStats) bool { return st.hits["py1"] >= 200 })

	// Requests that py1 holds open through both reloads: old workers finish
	// them after they stop taking new ones.
	const slowN = 4
	slow := make(chan string, slowN)
	slowClient := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 40 * time.Second}
	for i := 0; i < slowN; i++ {
		go func() {
			body, _, err := nginxGet(context.Background(), slowClient, s.url+"slow")
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
	st := load.waitFor(t, "traffic on py2", 15*time.Second, func(st nginxLoadStats) bool { return st.hits["py2"] >= 50 })
	both := st.hits
	load.waitFor(t, "traffic on both", 10*time.Second, func(st nginxLoadStats) bool {
		return st.hits["py1"] >= both["py1"]+50 && st.hits["py2"] >= both["py2"]+50
	})
	waitFile(t, s.dest, nginxUpstream(py1.addr(), py2.addr()), 5*time.Second)
	inAfter := st.first["py2"].Sub(added)

	// Phase 2: remove py1; only py2 serves.
	removed := time.Now()
	deleteKey(t, s.cli, "/app/upstream/py1")
	st = load.waitFor(t, "traffic on py2 only", 15*time.Second, func(st nginxLoadStats) bool {
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
	st = load.waitFor(t, "more traffic after py1 stopped", 15*time.Second, func(st nginxLoadStats) bool {
		return st.hits["py2"] >= both["py2"]+1500 || st.lastName != "py2"
	})
	final := load.stop()

	t.Logf("sent %d requests, %d failed (%d sent again by the client after nginx closed a kept-alive connection); py1 answered %d, py2 %d; py2 first answered %s after its key was put, py1 last answered %s after its key was deleted; %d requests held open across both reloads completed; nginx reloaded %d times",
		final.sent, final.failed, final.retried, final.hits["py1"], final.hits["py2"], inAfter.Round(time.Millisecond), outAfter.Round(time.Millisecond), slowN, s.nginx.reloads())
	if final.failed != 0 {
		t.Errorf("%d of %d requests failed, want 0; first failures: %q", final.failed, final.sent, final.errs)
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
	py1, py2 := startNginxBackend(t, "py1"), startNginxBackend(t, "py2")
	s := startNginxStack(t, "/app/upstream/py1", py1.addr())
	s.waitServing(t, "py1")
	good := nginxUpstream(py1.addr())
	waitFile(t, s.dest, good, 5*time.Second)
	info, err := os.Stat(s.dest)
	if err != nil {
		t.Fatal(err)
	}
	reloads := s.nginx.reloads()
	load := startNginxLoad(t, s.url, 20000, 60*time.Second, "py1", "py2")

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
		before := load.stats().sent
		put(t, s.cli, "/app/upstream/bad", step.value)
		s.confd.waitLog(t, step.log, 15*time.Second)
		load.waitFor(t, "requests after the rejection", 10*time.Second, func(st nginxLoadStats) bool { return st.sent >= before+200 })
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
	if st := load.stats(); st.hits["py2"] != 0 || st.failed != 0 {
		t.Errorf("while the key was broken: %s, want every request served by py1", st)
	}
	logs := s.confd.out.String()
	if !strings.Contains(logs, "check failed") || !strings.Contains(logs, "render failed") {
		t.Errorf("confd did not log both the failed check and the failed render:\n%s", logs)
	}

	// Fixing the key recovers: py2 joins.
	put(t, s.cli, "/app/upstream/bad", py2.addr())
	waitFile(t, s.dest, nginxUpstream(py2.addr(), py1.addr()), 15*time.Second)
	load.waitFor(t, "traffic on py2 after the fix", 15*time.Second, func(st nginxLoadStats) bool { return st.hits["py2"] >= 50 })
	final := load.stop()
	t.Logf("sent %d requests, %d failed (%d sent again by the client after nginx closed a kept-alive connection); py1 answered %d, py2 %d; nginx reloaded %d times",
		final.sent, final.failed, final.retried, final.hits["py1"], final.hits["py2"], s.nginx.reloads())
	if final.failed != 0 {
		t.Errorf("%d of %d requests failed, want 0; first failures: %q", final.failed, final.sent, final.errs)
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

// TestNginxCheckInclude runs the check script on config trees laid out in
// the ways nginx includes files. A case is discriminating when the live
// file and the staged file disagree: the result must follow the staged one.
func TestNginxCheckInclude(t *testing.T) {
	bin := nginxBin(t)
	const (
		good  = "upstream app { server 127.0.0.1:8080; }\n"
		bad   = "upstream app { server 127.0.0.1:99999; }\n"
		empty = "upstream app { }\n"
	)
	tests := []struct {
		name string
		// files of the tree (the directory of nginx.conf); ROOT is the
		// tree, PREFIX the nginx prefix; "-> x" makes a symbolic link to x.
		files  map[string]string
		dest   string // relative to ROOT, or absolute after ROOT/PREFIX expansion
		staged string
		args   []string // replaces the usual arguments when set
		code   int
		output string // expected in the output
	}{
		{
			name:  "relative glob, new file bad",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "conf.d/app-upstream.conf", staged: bad,
			code: 1, output: `invalid port in upstream "127.0.0.1:99999" in ROOT/conf.d/app-upstream.conf:1`,
		},
		{
			name:  "relative glob, live file bad",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": bad},
			dest:  "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name:  "absolute glob, new file bad",
			files: map[string]string{"nginx.conf": "include ROOT/conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "conf.d/app-upstream.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name:  "absolute glob, live file bad",
			files: map[string]string{"nginx.conf": "include ROOT/conf.d/*.conf;", "conf.d/app-upstream.conf": bad},
			dest:  "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name:  "quoted path, new file bad",
			files: map[string]string{"nginx.conf": `include "ROOT/upstreams/app.conf";`, "upstreams/app.conf": good},
			dest:  "upstreams/app.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name: "included from an included file",
			files: map[string]string{
				"nginx.conf": "include sites-enabled/*;", "sites-enabled/app": "include\tROOT/conf.d/app-upstream.conf;\n",
				"conf.d/app-upstream.conf": bad,
			},
			dest: "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name: "included through a link",
			files: map[string]string{
				"nginx.conf": "include sites-enabled/*.conf;", "sites-enabled/app.conf": "-> ROOT/sites-available/app.conf",
				"sites-available/app.conf": bad,
			},
			dest: "sites-available/app.conf", staged: good,
			output: "test is successful",
		},
		{
			name: "included through a relative link, new file bad",
			files: map[string]string{
				"nginx.conf": "include sites-enabled/*.conf;", "sites-enabled/app.conf": "-> ../sites-available/app.conf",
				"sites-available/app.conf": good,
			},
			dest: "sites-available/app.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name:  "first render, no live file",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/": ""},
			dest:  "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name:  "first render, new file bad",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/": ""},
			dest:  "conf.d/app-upstream.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name:  "no servers left",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "conf.d/app-upstream.conf", staged: empty,
			code: 1, output: `no servers are inside upstream`,
		},
		{
			name:  "the main file itself",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "nginx.conf", staged: "MAIN:include conf.d/*.conf; server_names_hash_bucket_size x;",
			code: 1, output: `"server_names_hash_bucket_size" directive invalid`,
		},
		{
			name:  "dest outside the tree",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/": ""},
			dest:  "PREFIX/app-upstream.conf", staged: good,
			code: 2, output: "is not inside ROOT",
		},
		{
			name:  "wrong usage",
			files: map[string]string{"nginx.conf": ""},
			args:  []string{"only-one"},
			code:  2, output: "usage:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, prefix, tmp := t.TempDir(), nginxPrefix(t), t.TempDir()
			expand := strings.NewReplacer("ROOT", root, "PREFIX", prefix).Replace
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				dir := filepath.Dir(p)
				if strings.HasSuffix(name, "/") {
					dir = p
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.HasSuffix(name, "/"):
					continue
				case strings.HasPrefix(content, "-> "):
					err := os.Symlink(expand(strings.TrimPrefix(content, "-> ")), p)
					if err != nil {
						t.Fatal(err)
					}
					continue
				case name == "nginx.conf":
					content = nginxMainConf(prefix, content)
				}
				if err := os.WriteFile(p, []byte(expand(content)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := tt.args
			if args == nil {
				// Staged as confd stages: a hidden file beside dest.
				dest := expand(tt.dest)
				if !filepath.IsAbs(dest) {
					dest = filepath.Join(root, dest)
				}
				staged := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".123456")
				content := tt.staged
				if m, ok := strings.CutPrefix(content, "MAIN:"); ok {
					content = nginxMainConf(prefix, m)
				}
				if err := os.WriteFile(staged, []byte(expand(content)), 0o600); err != nil {
					t.Fatal(err)
				}
				args = []string{staged, dest, filepath.Join(root, "nginx.conf"), prefix}
			}
			before := nginxTree(t, root)
			code, out := nginxRunScript(t, bin, tmp, args...)
			if code != tt.code || !strings.Contains(out, expand(tt.output)) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and output containing %q", code, out, tt.code, expand(tt.output))
			}
			if after := nginxTree(t, root); after != before {
				t.Errorf("the live tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

// TestNginxCheckIncludeUnprivileged runs the check as an unprivileged user
// (when the test runs as root), to show it needs no privilege beyond what
// nginx -t of the same configuration needs.
func TestNginxCheckIncludeUnprivileged(t *testing.T) {
	bin := nginxBin(t)
	base := t.TempDir()
	root, prefix, tmp := filepath.Join(base, "conf"), filepath.Join(base, "prefix"), filepath.Join(base, "tmp")
	for _, d := range []string{root + "/conf.d", prefix + "/logs", prefix + "/tmp", tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(root, "nginx.conf"):                        nginxMainConf(prefix, "include conf.d/*.conf;"),
		filepath.Join(root, "conf.d", "app-upstream.conf"):       "upstream app { server 127.0.0.1:99999; }\n",
		filepath.Join(root, "conf.d", ".app-upstream.conf.1234"): "upstream app { server 127.0.0.1:8080; }\n",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		const nobody = 65534
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		// nobody must reach base: open its parent, own everything below.
		if err := os.Chmod(filepath.Dir(base), 0o755); err != nil {
			t.Fatal(err)
		}
		err := filepath.WalkDir(base, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out := nginxRunScriptAs(t, cred, bin, tmp, filepath.Join(root, "conf.d", ".app-upstream.conf.1234"),
		filepath.Join(root, "conf.d", "app-upstream.conf"), filepath.Join(root, "nginx.conf"), prefix)
	if code != 0 || !strings.Contains(out, "test is successful") {
		t.Errorf("exit %d, output:\n%s\nwant exit 0 and a successful test", code, out)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func nginxRunScript(t *testing.T, bin, tmp string, args ...string) (int, string) {
	t.Helper()
	return nginxRunScriptAs(t, nil, bin, tmp, args...)
}

// nginxRunScriptAs runs the check script with TMPDIR=tmp, as cred when set.
func nginxRunScriptAs(t *testing.T, cred *syscall.Credential, bin, tmp string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nginxScript(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "NGINX_BIN=" + bin}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	case err != nil:
		t.Fatalf("run the check script: %v", err)
	}
	return 0, out.String()
}

// nginxTree describes every file and link below root, for comparison.
func nginxTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lines = append(lines, rel+" -> "+target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %v %s %q", rel, info.Mode(), info.ModTime().Format(time.RFC3339Nano), b))
		default:
			lines = append(lines, rel+"/")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
