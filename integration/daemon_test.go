package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// serversResource renders /app/servers between BEGIN and END lines, so that
// a reader can tell a whole file from a partial one.
var serversResource = map[string]string{
	"conf.d/servers.toml":    "[template]\nsrc = \"servers.tmpl\"\ndest = \"DEST/servers.conf\"\nkeys = [\"/app/servers\"]\n",
	"templates/servers.tmpl": "BEGIN\n{{range gets \"/app/servers/*\"}}server {{base .Key}} {{.Value}}\n{{end}}END\n",
}

// renderServers is what serversResource renders from the servers in state.
func renderServers(state map[string]string) string {
	names := make([]string, 0, len(state))
	for k := range state {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("BEGIN\n")
	for _, n := range names {
		fmt.Fprintf(&b, "server %s %s\n", n, state[n])
	}
	b.WriteString("END\n")
	return b.String()
}

var serverLine = regexp.MustCompile(`(?m)^server (\S+) (\S+)$`)

// wholeAndConsistent accepts a whole file in which the servers a and b,
// always written together in one transaction, have the same value.
func wholeAndConsistent(s string) bool {
	if !strings.HasPrefix(s, "BEGIN\n") || !strings.HasSuffix(s, "END\n") {
		return false
	}
	vals := map[string]string{}
	for _, m := range serverLine.FindAllStringSubmatch(s, -1) {
		vals[m[1]] = m[2]
	}
	return vals["a"] == vals["b"]
}

// putPair sets the servers a and b to v in one transaction.
func putPair(t *testing.T, cli *clientv3.Client, v string) {
	t.Helper()
	if _, err := cli.Txn(ctx10(t)).Then(clientv3.OpPut("/app/servers/a", v), clientv3.OpPut("/app/servers/b", v)).Commit(); err != nil {
		t.Fatalf("put servers a and b: %v", err)
	}
}

func ctx10(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWatchFollowsChangesAndBursts(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "v0")
	dir, out := confDir(t, serversResource)
	dest := filepath.Join(out, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir)
	state := map[string]string{"a": "v0", "b": "v0"}
	waitFile(t, dest, renderServers(state), 20*time.Second)
	reader := watchFile(dest, wholeAndConsistent)

	// Change, add, delete.
	put(t, cli, "/app/servers/c", "10.0.0.3:80")
	state["c"] = "10.0.0.3:80"
	waitFile(t, dest, renderServers(state), 10*time.Second)
	if _, err := cli.Delete(ctx10(t), "/app/servers/c"); err != nil {
		t.Fatal(err)
	}
	delete(state, "c")
	waitFile(t, dest, renderServers(state), 10*time.Second)

	// A burst of 1,000 transactions, each changing a and b together.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 1; i <= 1000; i++ {
		v := fmt.Sprintf("v%d", i)
		if _, err := cli.Txn(ctx).Then(clientv3.OpPut("/app/servers/a", v), clientv3.OpPut("/app/servers/b", v)).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	state["a"], state["b"] = "v1000", "v1000"
	waitFile(t, dest, renderServers(state), 10*time.Second)

	// Compaction of everything before now does not disturb a live watch.
	resp, err := cli.Get(ctx, "/app/servers/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	put(t, cli, "/app/servers/z", "after-compaction")
	state["z"] = "after-compaction"
	waitFile(t, dest, renderServers(state), 10*time.Second)
	reader.check(t)
	t.Logf("1,000-transaction burst and 4 other changes: %d renders", strings.Count(d.out.String(), "msg=updated"))
	assertNoStageFiles(t, out)
}

func TestWatchSurvivesEtcdRestart(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	dir, out := confDir(t, serversResource)
	dest := filepath.Join(out, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", e.Endpoints()[0], "-confdir", dir)
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 20*time.Second)
	reader := watchFile(dest, wholeAndConsistent)

	e.Stop()
	time.Sleep(500 * time.Millisecond)
	e.Restart(t)
	putPair(t, cli, "2")
	waitFile(t, dest, renderServers(map[string]string{"a": "2", "b": "2"}), 30*time.Second)
	reader.check(t)
	_ = d
}

func TestWatchEtcdDownAtStart(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	e.Stop()
	dir, out := confDir(t, serversResource)
	dest := filepath.Join(out, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", e.Endpoints()[0], "-confdir", dir, "-dial-timeout", "1s")
	d.waitLog(t, "etcd unavailable at start", 20*time.Second)
	e.Restart(t)
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 30*time.Second)
}

func TestWatchLeaderLossInCluster(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	cli := c.Client(t)
	putPair(t, cli, "1")
	dir, out := confDir(t, serversResource)
	dest := filepath.Join(out, "servers.conf")
	startDaemon(t, nil, "-watch", "-node", strings.Join(c.Endpoints(), ","), "-confdir", dir)
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 20*time.Second)
	reader := watchFile(dest, wholeAndConsistent)

	t.Run("leader killed", func(t *testing.T) {
		leader := leaderOf(t, c)
		leader.Stop()
		putPair(t, cli, "2")
		waitFile(t, dest, renderServers(map[string]string{"a": "2", "b": "2"}), 30*time.Second)
		leader.Restart(t)
	})
	t.Run("no leader, then back", func(t *testing.T) {
		stopped := c.Members[1:]
		for _, m := range stopped {
			m.Stop()
		}
		time.Sleep(2 * time.Second)
		for _, m := range stopped {
			go m.Restart(t)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := cli.Txn(ctx10(t)).Then(clientv3.OpPut("/app/servers/a", "3"), clientv3.OpPut("/app/servers/b", "3")).Commit()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster did not recover: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		waitFile(t, dest, renderServers(map[string]string{"a": "3", "b": "3"}), 30*time.Second)
	})
	reader.check(t)
}

// leaderOf returns the member that leads the cluster now.
func leaderOf(t *testing.T, c *etcdtest.Cluster) *etcdtest.Server {
	t.Helper()
	cli := c.Client(t)
	for _, m := range c.Members {
		st, err := cli.Status(ctx10(t), m.Endpoints()[0])
		if err == nil && st.Header.MemberId == st.Leader {
			return m
		}
	}
	t.Fatal("no leader found")
	return nil
}

func TestWatchDetectsSilentWatch(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	proxy := etcdtest.NewProxy(t, hostPort(e.Endpoints()[0]))
	dir, out := confDir(t, serversResource)
	dest := filepath.Join(out, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", proxy.Endpoint(), "-confdir", dir, "-watch-timeout", "2s", "-request-timeout", "2s")
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 20*time.Second)

	proxy.Blackhole()
	putPair(t, cli, "2")
	d.waitLog(t, "watch went silent", 15*time.Second)
	proxy.Heal()
	waitFile(t, dest, renderServers(map[string]string{"a": "2", "b": "2"}), 30*time.Second)
	d.waitLog(t, "etcd back", 10*time.Second)
}

func TestWatchMissingKeysAndIsolation(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	files := map[string]string{
		"conf.d/late.toml":    "[template]\nsrc = \"late.tmpl\"\ndest = \"DEST/late.conf\"\nkeys = [\"/app/late\"]\n",
		"templates/late.tmpl": "late={{getv \"/app/late/key\"}}\n",
		"conf.d/failing.toml": "[template]\nsrc = \"servers.tmpl\"\ndest = \"DEST/failing.conf\"\nkeys = [\"/app/servers\"]\ncheck_cmd = \"echo refused; exit 1\"\n",
	}
	for k, v := range serversResource {
		files[k] = v
	}
	dir, out := confDir(t, files)
	dest := filepath.Join(out, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", e.Endpoints()[0], "-confdir", dir)
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 20*time.Second)
	d.waitLog(t, "waiting for missing key", 10*time.Second)

	putPair(t, cli, "2")
	waitFile(t, dest, renderServers(map[string]string{"a": "2", "b": "2"}), 10*time.Second)
	put(t, cli, "/app/late/key", "here")
	waitFile(t, filepath.Join(out, "late.conf"), "late=here\n", 10*time.Second)
	// The failing resource's check runs beside the others, and may end
	// after them.
	d.waitLog(t, "refused", 10*time.Second)

	if n := strings.Count(d.out.String(), "waiting for missing key"); n != 1 {
		t.Errorf("missing key warned %d times, want once", n)
	}
	assertMissing(t, filepath.Join(out, "failing.conf"))
}

func TestWatchSIGHUP(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	put(t, cli, "/app/servers/a", "1", "/app/servers/b", "1", "/db/host", "10.0.0.9")
	dir, out := confDir(t, serversResource)
	dest := filepath.Join(out, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", e.Endpoints()[0], "-confdir", dir)
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 20*time.Second)

	// A broken resource: the reload is rejected and the old setup goes on.
	broken := filepath.Join(dir, "conf.d", "broken.toml")
	if err := os.WriteFile(broken, []byte("[template\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	d.waitLog(t, "new configuration rejected", 10*time.Second)
	putPair(t, cli, "2")
	waitFile(t, dest, renderServers(map[string]string{"a": "2", "b": "2"}), 10*time.Second)

	// A good new resource with a new prefix: it is rendered and watched.
	os.Remove(broken)
	if err := os.WriteFile(filepath.Join(dir, "conf.d", "db.toml"),
		[]byte(strings.ReplaceAll("[template]\nsrc = \"db.tmpl\"\ndest = \"DEST/db.conf\"\nkeys = [\"/db\"]\n", "DEST", out)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "db.tmpl"), []byte("db={{getv \"/db/host\"}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	waitFile(t, filepath.Join(out, "db.conf"), "db=10.0.0.9\n", 20*time.Second)
	put(t, cli, "/db/host", "10.0.0.10")
	waitFile(t, filepath.Join(out, "db.conf"), "db=10.0.0.10\n", 10*time.Second)
	putPair(t, cli, "3")
	waitFile(t, dest, renderServers(map[string]string{"a": "3", "b": "3"}), 10*time.Second)
}

func TestWatchSIGTERMDuringSlowCheck(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	files := map[string]string{
		"conf.d/servers.toml": "[template]\nsrc = \"servers.tmpl\"\ndest = \"DEST/servers.conf\"\nkeys = [\"/app/servers\"]\n" +
			"check_cmd = \"if grep -q 'a 2' {{.src}}; then touch DEST/checking; sleep 2; fi\"\n",
		"templates/servers.tmpl": serversResource["templates/servers.tmpl"],
	}
	dir, out := confDir(t, files)
	dest := filepath.Join(out, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", e.Endpoints()[0], "-confdir", dir)
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 20*time.Second)

	putPair(t, cli, "2")
	eventually(t, 10*time.Second, "the slow check to start", func() bool {
		_, err := os.Stat(filepath.Join(out, "checking"))
		return err == nil
	})
	start := time.Now()
	if code := d.stop(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if got := readFile(t, dest); got != renderServers(map[string]string{"a": "2", "b": "2"}) {
		t.Errorf("the in-flight sync did not finish; dest:\n%s", got)
	}
	assertNoStageFiles(t, out)
}

func TestIntervalMode(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	dir, out := confDir(t, serversResource)
	dest := filepath.Join(out, "servers.conf")
	// The seed's daemon command line, with a one-second interval.
	d := startDaemon(t, nil, "-verbose", "-interval", "1", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir, "-log-level", "debug")
	waitFile(t, dest, renderServers(map[string]string{"a": "1", "b": "1"}), 20*time.Second)

	// Nothing changes: polls render nothing. (The line about the first
	// render is logged right after the file is written.)
	d.waitLog(t, "msg=updated", 10*time.Second)
	before := strings.Count(d.out.String(), "resource=servers.toml")
	time.Sleep(3 * time.Second)
	if after := strings.Count(d.out.String(), "resource=servers.toml"); after != before {
		t.Errorf("%d renders while nothing changed", after-before)
	}

	putPair(t, cli, "2")
	waitFile(t, dest, renderServers(map[string]string{"a": "2", "b": "2"}), 10*time.Second)
	if _, err := cli.Delete(ctx10(t), "/app/servers/b"); err != nil {
		t.Fatal(err)
	}
	waitFile(t, dest, renderServers(map[string]string{"a": "2"}), 10*time.Second)
}
