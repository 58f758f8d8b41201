package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// The HAProxy example of examples/haproxy, run as a user would: a real
// HAProxy in master-worker mode, configured by confd -watch from etcd and
// reloaded by the example's reload script through the master CLI.

// haproxyExampleDir holds the example these tests run.
const haproxyExampleDir = "../examples/haproxy"

// haproxyExample is one running setup: etcd, backends, HAProxy and confd.
type haproxyExample struct {
	cli      *clientv3.Client
	node     string
	confdir  string
	dest     string // the configuration confd writes and HAProxy reads
	socket   string // HAProxy's master CLI
	url      string // the frontend
	haproxy  *group
	confd    *daemon
	backends map[string]*backend
}

// startHAProxyExample registers a backend for each name and starts HAProxy
// with the configuration confd renders from the example, then confd -watch.
// Every backend started, registered or not, is in the result.
func startHAProxyExample(t *testing.T, registered []string, others ...string) *haproxyExample {
	t.Helper()
	haproxyBin := requireProgram(t, "haproxy")
	requireProgram(t, "socat") // the reload script talks to the master CLI with it

	e := etcdtest.Start(t)
	x := &haproxyExample{cli: e.Client(t), node: hostPort(e.Endpoints()[0]), backends: map[string]*backend{}}
	for _, name := range append(append([]string{}, registered...), others...) {
		x.backends[name] = startBackend(t, name)
	}
	bind := deadEndpoint(t)
	x.url = "http://" + bind + "/"
	put(t, x.cli, "/app/bind", bind)
	for _, name := range registered {
		put(t, x.cli, "/app/servers/"+name, x.backends[name].addr())
	}

	run := t.TempDir()
	x.socket = filepath.Join(run, "master.sock")
	x.confdir, x.dest = haproxyConfdir(t, x.socket)

	// The first configuration, written without check or reload, as it
	// would be before HAProxy is started.
	if r := runConfd(t, nil, "-onetime", "-sync-only", "-node", x.node, "-confdir", x.confdir); r.code != 0 {
		t.Fatalf("confd -onetime exited %d", r.code)
	}
	x.haproxy = startGroup(t, haproxyBin, "-W", "-db", "-f", x.dest, "-p", filepath.Join(run, "haproxy.pid"), "-S", x.socket)
	eventually(t, 10*time.Second, "haproxy to serve "+x.url, func() bool {
		if x.haproxy.exited() {
			t.Fatalf("haproxy exited: %v", x.haproxy.err)
		}
		if _, err := masterCLI(x.socket, "show proc"); err != nil {
			return false
		}
		ok, _ := serves(x.url, registered, 2*len(registered))
		return ok
	})
	x.confd = startDaemon(t, nil, "-watch", "-node", x.node, "-confdir", x.confdir)
	return x
}

// startTraffic sends requests through HAProxy, one after the other, each
// on a new connection (startTraffic); an answer from a backend of x counts.
func (x *haproxyExample) startTraffic(t *testing.T) *traffic {
	t.Helper()
	return startTraffic(t, x.url, slices.Collect(maps.Keys(x.backends)), newConnClient(requestTimeout))
}

// haproxyConfdir builds a confdir from the example: its template as it is,
// its resource with dest in a new temporary directory and the reload
// script pointed at socket.
func haproxyConfdir(t *testing.T, socket string) (confdir, dest string) {
	t.Helper()
	var res map[string]map[string]any
	if _, err := toml.DecodeFile(filepath.Join(haproxyExampleDir, "conf.d", "haproxy.toml"), &res); err != nil {
		t.Fatal(err)
	}
	tmpl := res["template"]
	script, err := filepath.Abs(filepath.Join(haproxyExampleDir, "haproxy-reload.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/usr/local/sbin/haproxy-reload.sh -S /run/haproxy-master.sock"; tmpl["reload_cmd"] != want {
		t.Fatalf("the example's reload_cmd is %q, want %q", tmpl["reload_cmd"], want)
	}
	tmpl["reload_cmd"] = fmt.Sprintf("'%s' -S '%s' -t 20", script, socket)
	template := readFile(t, filepath.Join(haproxyExampleDir, "templates", tmpl["src"].(string)))

	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(res); err != nil {
		t.Fatal(err)
	}
	confdir, out := confDir(t, map[string]string{
		"conf.d/haproxy.toml":               strings.ReplaceAll(buf.String(), "/etc/haproxy", "DEST"),
		"templates/" + tmpl["src"].(string): template,
	})
	return confdir, filepath.Join(out, "haproxy.cfg")
}

// masterCLI sends one command to HAProxy's master CLI and returns the
// answer.
func masterCLI(socket, command string) (string, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return "", err
	}
	// The master answers once the command is complete, then closes.
	if err := c.CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// logLine returns the first line of logs that contains s.
func logLine(logs, s string) string {
	for l := range strings.Lines(logs) {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// masterState is what "show proc" says about the master.
type masterState struct {
	pid, reloads int
}

// master reads the master's pid and reload counter. While the master
// reloads, its CLI refuses connections: master waits for it (at most 10 s).
func (x *haproxyExample) master(t *testing.T) masterState {
	t.Helper()
	var out string
	var err error
	eventually(t, 10*time.Second, "the haproxy master CLI", func() bool {
		out, err = masterCLI(x.socket, "show proc")
		return err == nil
	})
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[1] == "master" {
			pid, err1 := strconv.Atoi(f[0])
			reloads, err2 := strconv.Atoi(f[2])
			if err1 == nil && err2 == nil {
				return masterState{pid: pid, reloads: reloads}
			}
		}
	}
	t.Fatalf("no master line in show proc:\n%s", out)
	return masterState{}
}

// TestHAProxyExampleMatchesRepository keeps the repository's conf.d/ and
// templates/, which make demo uses, the same as the example.
func TestHAProxyExampleMatchesRepository(t *testing.T) {
	for _, f := range []string{"conf.d/haproxy.toml", "templates/haproxy.cfg.tmpl"} {
		if got, want := readFile(t, filepath.Join("..", f)), readFile(t, filepath.Join(haproxyExampleDir, f)); got != want {
			t.Errorf("../%s differs from %s/%s", f, haproxyExampleDir, f)
		}
	}
}

// TestHAProxyRegisterDeregisterUnderTraffic registers a third backend and
// then deregisters the first, and back again, while a client sends
// requests without pause: no request fails, and after each step the
// traffic reaches exactly the registered backends.
func TestHAProxyRegisterDeregisterUnderTraffic(t *testing.T) {
	x := startHAProxyExample(t, []string{"a", "b"}, "c")
	tr := x.startTraffic(t)
	register := func(name string) func() {
		return func() { put(t, x.cli, "/app/servers/"+name, x.backends[name].addr()) }
	}
	deregister := func(name string) func() {
		return func() { deleteKey(t, x.cli, "/app/servers/"+name) }
	}
	steps := []struct {
		name   string
		change func()
		want   []string
	}{
		{"start", func() {}, []string{"a", "b"}},
		{"register c", register("c"), []string{"a", "b", "c"}},
		{"deregister a", deregister("a"), []string{"b", "c"}},
		{"register a", register("a"), []string{"a", "b", "c"}},
		{"deregister c", deregister("c"), []string{"a", "b"}},
	}
	// afterSettling requests go to each settled setup before the next step.
	const afterSettling = 500
	before := x.master(t)
	marks := make([]int, len(steps)+1)
	settled := make([]int, len(steps))
	for i, s := range steps {
		marks[i] = tr.mark()
		start := time.Now()
		s.change()
		settled[i] = tr.settle(t, marks[i], s.want, settleRequests, 20*time.Second)
		t.Logf("%s: settled after %d requests, %s", s.name, settled[i]-marks[i], time.Since(start).Round(time.Millisecond))
		tr.waitFor(t, "more traffic", 20*time.Second, func(st trafficStats) bool { return st.sent >= settled[i]+afterSettling })
	}
	tr.stop()
	marks[len(steps)] = tr.mark()

	for i, s := range steps {
		t.Logf("step %q: %s", s.name, tr.stats(marks[i], marks[i+1]))
		tr.only(t, settled[i], marks[i+1], s.want)
	}
	total := tr.stats(0, -1)
	after := x.master(t)
	t.Logf("in all: %s in %s, across %d reloads", total, tr.end.Sub(tr.start).Round(time.Millisecond), after.reloads-before.reloads)
	if total.failed != 0 {
		t.Errorf("%d of %d requests failed, e.g. %q", total.failed, total.sent, tr.failures())
	}
	if after.pid != before.pid || after.reloads != before.reloads+len(steps)-1 {
		t.Errorf("haproxy master before %+v, after %+v: want the same master, reloaded %d times", before, after, len(steps)-1)
	}
}

// TestHAProxyRejectsBadServer puts a server address HAProxy refuses into
// etcd: check_cmd rejects the configuration, HAProxy goes on serving with
// the previous one, and fixing the key recovers without a restart.
func TestHAProxyRejectsBadServer(t *testing.T) {
	x := startHAProxyExample(t, []string{"a", "b"}, "x")
	before := x.master(t)
	good := readFile(t, x.dest)

	put(t, x.cli, "/app/servers/x", "127.0.0.1:99999")
	x.confd.waitLog(t, "check failed", 20*time.Second)
	line := logLine(x.confd.out.String(), "check failed")
	for _, want := range []string{"resource=haproxy.toml", "check_cmd failed", "exit status 1", "invalid port '99999'"} {
		if !strings.Contains(line, want) {
			t.Errorf("the log line of the failed check lacks %q:\n%s", want, line)
		}
	}
	if got := readFile(t, x.dest); got != good {
		t.Errorf("dest changed after a failed check:\n%s", got)
	}
	if ok, got := serves(x.url, []string{"a", "b"}, 20); !ok {
		t.Errorf("after the failed check, haproxy served %s, want a and b", got)
	}
	if after := x.master(t); after != before {
		t.Errorf("haproxy master %+v after the failed check, want %+v: no reload", after, before)
	}

	put(t, x.cli, "/app/servers/x", x.backends["x"].addr())
	waitServes(t, x.url, []string{"a", "b", "x"}, 30, 20*time.Second)
	if after := x.master(t); after.pid != before.pid || after.reloads != before.reloads+1 {
		t.Errorf("haproxy master %+v after the fix, want pid %d reloaded once more than %d", after, before.pid, before.reloads)
	}
	x.confd.waitLog(t, "recovered", 10*time.Second)
}

// TestHAProxyFailedReload sets a listen address that haproxy -c accepts
// but HAProxy cannot bind, because a backend listens there: the reload
// script reports the failed reload, confd logs it, HAProxy goes on serving
// with the previous configuration, and the next change recovers.
func TestHAProxyFailedReload(t *testing.T) {
	x := startHAProxyExample(t, []string{"a", "b"})
	before := x.master(t)
	bind := strings.TrimSuffix(strings.TrimPrefix(x.url, "http://"), "/")

	put(t, x.cli, "/app/bind", x.backends["a"].addr())
	x.confd.waitLog(t, "reload failed", 30*time.Second)
	line := logLine(x.confd.out.String(), "reload failed")
	for _, want := range []string{"resource=haproxy.toml", "reload_cmd failed", "exit status 1", "haproxy reload failed"} {
		if !strings.Contains(line, want) {
			t.Errorf("the log line of the failed reload lacks %q:\n%s", want, line)
		}
	}
	if ok, got := serves(x.url, []string{"a", "b"}, 20); !ok {
		t.Errorf("after the failed reload, haproxy served %s, want a and b", got)
	}
	if after := x.master(t); after.pid != before.pid || after.reloads != before.reloads+1 {
		t.Errorf("haproxy master %+v after the failed reload, want pid %d reloaded once more than %d", after, before.pid, before.reloads)
	}

	put(t, x.cli, "/app/bind", bind)
	x.confd.waitLog(t, "recovered", 30*time.Second)
	waitServes(t, x.url, []string{"a", "b"}, 20, 20*time.Second)
	if after := x.master(t); after.pid != before.pid || after.reloads != before.reloads+2 {
		t.Errorf("haproxy master %+v after the fix, want pid %d reloaded twice more than %d", after, before.pid, before.reloads)
	}
}

// TestHAProxyNoServers deletes the last server: the template's empty case is
// a valid configuration, HAProxy reloads and answers 503, and registering a
// server again brings it back.
func TestHAProxyNoServers(t *testing.T) {
	x := startHAProxyExample(t, []string{"a"})
	before := x.master(t)

	deleteKey(t, x.cli, "/app/servers/a")
	eventually(t, 20*time.Second, "the configuration without servers", func() bool {
		return strings.Contains(readFile(t, x.dest), "No server is registered under /app/servers")
	})
	if cfg := readFile(t, x.dest); strings.Contains(cfg, "    server ") {
		t.Errorf("the configuration without servers still has a server line:\n%s", cfg)
	}
	eventually(t, 20*time.Second, "haproxy to answer 503", func() bool {
		code, err := fetchStatus(ctx10(t), x.url)
		return err == nil && code == 503
	})
	if after := x.master(t); after.pid != before.pid || after.reloads != before.reloads+1 {
		t.Errorf("haproxy master %+v without servers, want pid %d reloaded once more than %d", after, before.pid, before.reloads)
	}

	put(t, x.cli, "/app/servers/a", x.backends["a"].addr())
	waitServes(t, x.url, []string{"a"}, 10, 20*time.Second)
}

// TestHAProxyQuickSuccessiveChanges makes two changes 20 ms apart, three
// times: both take effect every time, which needs a reload that does not
// return before HAProxy has finished the previous one.
func TestHAProxyQuickSuccessiveChanges(t *testing.T) {
	x := startHAProxyExample(t, []string{"a", "b"}, "c")
	tr := x.startTraffic(t)
	before := x.master(t)
	rounds := []struct {
		add, remove string
		want        []string
	}{
		{"c", "a", []string{"b", "c"}},
		{"a", "b", []string{"a", "c"}},
		{"b", "c", []string{"a", "b"}},
	}
	for _, r := range rounds {
		from := tr.mark()
		put(t, x.cli, "/app/servers/"+r.add, x.backends[r.add].addr())
		time.Sleep(20 * time.Millisecond)
		deleteKey(t, x.cli, "/app/servers/"+r.remove)
		at := tr.settle(t, from, r.want, settleRequests, 20*time.Second)
		// Long enough for a reload that was lost to have shown.
		time.Sleep(500 * time.Millisecond)
		tr.only(t, at, -1, r.want)
		t.Logf("+%s -%s: %s", r.add, r.remove, tr.stats(from, -1))
	}
	tr.stop()
	total := tr.stats(0, -1)
	after := x.master(t)
	t.Logf("in all: %s; haproxy reloaded %d times, confd logged %d reloads", total, after.reloads-before.reloads,
		strings.Count(x.confd.out.String(), "updated and reloaded"))
	if total.failed != 0 {
		t.Errorf("%d of %d requests failed, e.g. %q", total.failed, total.sent, tr.failures())
	}
}

// TestRegisterScript runs examples/register.sh with an etcdctl that records
// its arguments and environment.
func TestRegisterScript(t *testing.T) {
	script, err := filepath.Abs("../examples/register.sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      []string
		deleted  string // what the fake etcdctl del prints
		wantCode int
		wantCall string // the recorded etcdctl call, "" for none
		wantOut  string
	}{
		{"add", []string{"add", "web1", "10.0.0.1:8080"}, []string{"ETCDCTL_ENDPOINTS=http://127.0.0.1:2379"}, "", 0,
			"api=3 endpoints=http://127.0.0.1:2379 put /app/servers/web1 10.0.0.1:8080", "registered /app/servers/web1 = 10.0.0.1:8080"},
		{"rm", []string{"rm", "web1"}, nil, "1", 0, "api=3 endpoints= del /app/servers/web1", "removed /app/servers/web1"},
		{"rm unknown", []string{"rm", "web9"}, nil, "0", 1, "api=3 endpoints= del /app/servers/web9", "no server registered as /app/servers/web9"},
		{"prefix", []string{"add", "w", "[::1]:80"}, []string{"REGISTER_PREFIX=/prod/servers/"}, "", 0,
			"api=3 endpoints= put /prod/servers/w [::1]:80", "registered"},
		{"bad port", []string{"add", "web1", "127.0.0.1:99999"}, nil, "", 2, "", "invalid address"},
		{"no port", []string{"add", "web1", "10.0.0.1"}, nil, "", 2, "", "invalid address"},
		{"slash in name", []string{"add", "a/b", "10.0.0.1:80"}, nil, "", 2, "", "invalid server name"},
		{"usage", []string{"put", "a"}, nil, "", 2, "", "usage:"},
		{"no args", nil, nil, "", 2, "", "usage:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			fake := "#!/bin/sh\necho \"api=$ETCDCTL_API endpoints=${ETCDCTL_ENDPOINTS:-} $*\" >> '" + calls + "'\n" +
				"[ \"$1\" = del ] && echo '" + tt.deleted + "'\nexit 0\n"
			if err := os.WriteFile(filepath.Join(dir, "etcdctl"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(script, tt.args...)
			cmd.Env = append([]string{"PATH=" + dir + ":/usr/bin:/bin"}, tt.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("output %q lacks %q", out, tt.wantOut)
			}
			got, _ := os.ReadFile(calls)
			if strings.TrimSpace(string(got)) != tt.wantCall {
				t.Errorf("etcdctl calls:\n%s\nwant:\n%s", got, tt.wantCall)
			}
		})
	}
}
