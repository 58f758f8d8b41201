package integration

// Faults injected into a running confd -watch (or -interval) against a real
// etcd while keys change. After each fault is healed the test checks that
//
//   - the destination equals the render of etcd's final state within a
//     stated time, which is logged as "converge: ...";
//   - a reader polling the destination never saw a partial file, a file
//     rendered from part of a transaction, an older version after a newer
//     one, or no file at all;
//   - no change was lost: every change etcd confirmed is in the final file;
//   - confd used next to no CPU while it waited for etcd;
//   - confd has as many open files as before (the measurable stand-in for
//     leaked goroutines: confd has no debug endpoint to count them).
//
// The outages of TestFaultNoQuorum, TestFaultEtcdDown and
// TestFaultCompactedWhileCutOff last 5, 5 and 6 s, or 30, 60 and 20 s with
// CONFD_LONG_FAULTS=1 (make test-faults). The faults the
// daemon tests cover already (a restart, a killed leader, a short loss of
// quorum, a silent watch, signals) are not repeated here.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// mustChange makes change n (see change) or fails the test.
func mustChange(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	if err := change(ctx10(t), cli, n); err != nil {
		t.Fatalf("change %d: %v", n, err)
	}
}

// startServers starts confd with args on serversResource, waits for the
// first render and returns it with the destination and its directory.
func startServers(t *testing.T, cli *clientv3.Client, env []string, args ...string) (d *daemon, dest, out string) {
	t.Helper()
	dir, out := confDir(t, serversResource)
	dest = filepath.Join(out, "servers.conf")
	d = startDaemon(t, env, append(args, "-confdir", dir)...)
	waitFile(t, dest, renderServers(etcdServers(t, cli)), 20*time.Second)
	return d, dest, out
}

// waitConverged waits at most timeout for dest to be the render of state
// and logs how long after healed that was.
func waitConverged(t *testing.T, dest string, state map[string]string, healed time.Time, timeout time.Duration) {
	t.Helper()
	waitFile(t, dest, renderServers(state), timeout)
	t.Logf("converge: dest matched etcd (%d servers) %s after healing (bound %s)",
		len(state), time.Since(healed).Round(time.Millisecond), timeout)
}

// checkOutageLogged checks that confd, if it logged down, logged back
// after it. With mustNotice the outage must have been logged. An outage
// in which confd keeps its connection to etcd, such as a cluster without
// quorum, and shorter than -watch-timeout (30 s) need not be logged in
// watch mode: the watch is only silent for a while.
func checkOutageLogged(t *testing.T, d *daemon, mustNotice bool, down, back string) {
	t.Helper()
	if !strings.Contains(d.out.String(), down) {
		if mustNotice {
			t.Errorf("confd did not log %q", down)
		} else {
			t.Logf("confd did not log the outage: its watch was only silent for a while")
		}
		return
	}
	eventually(t, 10*time.Second, "confd to log "+back+" after "+down, func() bool {
		out := d.out.String()
		return strings.LastIndex(out, back) > strings.LastIndex(out, down)
	})
}

// Fault 3: two of three members stopped, so the cluster has no leader, while
// a client keeps writing; then both come back.
func TestFaultNoQuorum(t *testing.T) {
	outage := faultLength(5*time.Second, 30*time.Second)
	c := etcdtest.StartCluster(t, 3)
	cli := c.Client(t)
	mustChange(t, cli, 0)
	d, dest, out := startServers(t, cli, nil, "-watch", "-node", strings.Join(c.Endpoints(), ","))
	pid := d.cmd.Process.Pid
	reader := watchDest(dest)
	base := readUsage(t, pid)

	w := startWriter(cli, 1, 50*time.Millisecond)
	eventually(t, 10*time.Second, "changes before the fault", func() bool { return w.acksSince(time.Time{}) >= 5 })
	stopped := c.Members[1:]
	for _, m := range stopped {
		m.Stop()
	}
	before := readUsage(t, pid)
	time.Sleep(outage)
	checkIdleCPU(t, before, readUsage(t, pid), outage)

	start := time.Now()
	restartAll(t, stopped)
	healed := time.Now()
	t.Logf("heal: two members restarted in %s", healed.Sub(start).Round(time.Millisecond))
	state := w.finish(t, c.Client(t), healed)
	waitConverged(t, dest, state, healed, 30*time.Second)
	checkOutageLogged(t, d, false, "etcd unavailable, keeping the last good files", "etcd back")
	reader.check(t)
	checkFDs(t, pid, base)
	assertNoStageFiles(t, out)
}

// Fault 4: every member of the cluster down for a while, in watch mode and
// in interval mode. The destination keeps its last good content
// throughout, and catches up once etcd is back.
func TestFaultEtcdDown(t *testing.T) {
	outage := faultLength(5*time.Second, 60*time.Second)
	modes := []struct {
		name       string
		args       []string
		mustNotice bool // the outage must be logged
		down, back string
	}{
		{"watch", []string{"-watch", "-interval", "1"}, true, "etcd unavailable, keeping the last good files", "etcd back"},
		{"interval", []string{"-interval", "1"}, true, "backend unavailable, keeping the last good files", "backend back"},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			c := etcdtest.StartCluster(t, 3)
			cli := c.Client(t)
			mustChange(t, cli, 0)
			d, dest, out := startServers(t, cli, nil, append(mode.args, "-node", strings.Join(c.Endpoints(), ","))...)
			pid := d.cmd.Process.Pid
			reader := watchDest(dest)
			base := readUsage(t, pid)

			w := startWriter(cli, 1, 50*time.Millisecond)
			eventually(t, 10*time.Second, "changes before the fault", func() bool { return w.acksSince(time.Time{}) >= 5 })
			for _, m := range c.Members {
				m.Stop()
			}
			down := time.Now()
			before := readUsage(t, pid)
			// Changes confirmed just before the stop may still be
			// rendered in the first moments; after that the file
			// must stay as it is.
			time.Sleep(time.Second)
			kept := readFile(t, dest)
			time.Sleep(outage - time.Since(down))
			checkIdleCPU(t, before, readUsage(t, pid), outage)
			if got := readFile(t, dest); got != kept {
				t.Errorf("dest changed while etcd was down:\nbefore:\n%s\nafter:\n%s", kept, got)
			}

			start := time.Now()
			restartAll(t, c.Members)
			healed := time.Now()
			t.Logf("heal: three members restarted in %s", healed.Sub(start).Round(time.Millisecond))
			state := w.finish(t, c.Client(t), healed)
			waitConverged(t, dest, state, healed, 60*time.Second)
			checkOutageLogged(t, d, mode.mustNotice, mode.down, mode.back)
			reader.check(t)
			checkFDs(t, pid, base)
			assertNoStageFiles(t, out)
		})
	}
}

// Fault 5: confd cut off from etcd (every byte held back, no connection
// closed) while keys change and one is deleted, and etcd compacts past the
// revision confd watches from. After healing, confd must list again rather
// than resume, and the deleted key must be gone from the file.
func TestFaultCompactedWhileCutOff(t *testing.T) {
	outage := faultLength(6*time.Second, 20*time.Second)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	mustChange(t, cli, 0)
	put(t, cli, "/app/servers/gone", "10.0.0.99:80")
	proxy := etcdtest.NewProxy(t, hostPort(e.Endpoints()[0]))
	d, dest, out := startServers(t, cli, nil, "-watch", "-node", proxy.Endpoint(),
		"-watch-timeout", "2s", "-request-timeout", "2s")
	pid := d.cmd.Process.Pid
	reader := watchDest(dest)
	base := readUsage(t, pid)

	w := startWriter(cli, 1, 50*time.Millisecond)
	eventually(t, 10*time.Second, "changes before the fault", func() bool { return w.acksSince(time.Time{}) >= 3 })
	proxy.Blackhole()
	cut := time.Now()
	before := readUsage(t, pid)
	eventually(t, 10*time.Second, "changes while cut off", func() bool { return w.acksSince(cut) >= 3 })
	deleteKey(t, cli, "/app/servers/gone")
	d.waitLog(t, "watch went silent", 15*time.Second)
	time.Sleep(outage - time.Since(cut))
	resp, err := cli.Get(ctx10(t), "/app/servers/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx10(t), resp.Header.Revision); err != nil {
		t.Fatalf("compact: %v", err)
	}
	checkIdleCPU(t, before, readUsage(t, pid), time.Since(cut))

	proxy.Heal()
	healed := time.Now()
	state := w.finish(t, e.Client(t), healed)
	if _, ok := state["gone"]; ok {
		t.Fatal("the deleted server is still in etcd")
	}
	waitConverged(t, dest, state, healed, 30*time.Second)
	d.waitLog(t, "watch revision compacted, listing again", 10*time.Second)
	reader.check(t)
	checkFDs(t, pid, base)
	assertNoStageFiles(t, out)
}

// Fault 7: the authentication token of confd expires (etcd forgets a
// token left unused for its TTL, here 1 s) during a long watch and between
// polls. confd must get a new one whenever it needs one, and never show
// its password.
func TestFaultAuthTokenExpiry(t *testing.T) {
	const (
		ttl      = 1
		password = "reader-pw-7c2e91"
	)
	// expire waits until etcd surely dropped a token last used now.
	expire := func() { time.Sleep(ttl*time.Second + 2*time.Second) }
	env := []string{"CONFD_PASSWORD=" + password}

	start := func(t *testing.T) (*etcdtest.Server, *clientv3.Client) {
		e := etcdtest.Start(t, etcdtest.WithAuthTokenTTL(ttl))
		plain := e.Client(t)
		mustChange(t, plain, 0)
		etcdtest.EnableAuth(t, plain, "reader", password, "/app/")
		root, err := clientv3.New(clientv3.Config{
			Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			Username: "root", Password: etcdtest.RootPassword,
		})
		if err != nil {
			t.Fatalf("connect as root: %v", err)
		}
		t.Cleanup(func() { root.Close() })
		return e, root
	}
	checkPassword := func(t *testing.T, d *daemon) {
		t.Helper()
		if strings.Contains(d.out.String(), password) {
			t.Error("the password appears in the output of confd")
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d.cmd.Process.Pid))
		if err == nil && strings.Contains(string(cmdline), password) {
			t.Error("the password appears on the command line of confd")
		}
	}

	t.Run("watch", func(t *testing.T) {
		e, root := start(t)
		proxy := etcdtest.NewProxy(t, hostPort(e.Endpoints()[0]))
		d, dest, _ := startServers(t, root, env, "-watch", "-node", proxy.Endpoint(),
			"-basic-auth", "-username", "reader", "-watch-timeout", "2s", "-request-timeout", "2s")
		reader := watchDest(dest)
		n := 0
		for cycle := 1; cycle <= 2; cycle++ {
			// A watch that is up goes on delivering after its token expired.
			expire()
			n++
			mustChange(t, root, n)
			changed := time.Now()
			waitFile(t, dest, renderServers(etcdServers(t, root)), 10*time.Second)
			t.Logf("converge: cycle %d: live watch delivered a change %s after it was made, token expired",
				cycle, time.Since(changed).Round(time.Millisecond))

			// A watch set up again after the token expired needs a new one.
			silent := strings.Count(d.out.String(), "watch went silent")
			proxy.Blackhole()
			n++
			mustChange(t, root, n)
			eventually(t, 15*time.Second, "the watch to go silent", func() bool {
				return strings.Count(d.out.String(), "watch went silent") > silent
			})
			expire()
			proxy.Heal()
			waitConverged(t, dest, etcdServers(t, root), time.Now(), 30*time.Second)
		}
		// A restarted etcd has forgotten every token.
		e.Restart(t)
		healed := time.Now()
		n++
		mustChange(t, root, n)
		waitConverged(t, dest, etcdServers(t, root), healed, 30*time.Second)
		reader.check(t)
		checkPassword(t, d)
	})

	t.Run("interval", func(t *testing.T) {
		_, root := start(t)
		// Every poll comes more than the TTL after the one before.
		d, dest, _ := startServers(t, root, env, "-interval", "3", "-node", root.Endpoints()[0],
			"-basic-auth", "-username", "reader")
		reader := watchDest(dest)
		for n := 1; n <= 3; n++ {
			expire()
			mustChange(t, root, n)
			changed := time.Now()
			waitFile(t, dest, renderServers(etcdServers(t, root)), 15*time.Second)
			t.Logf("converge: poll %d after token expiry rendered the change %s after it was made (interval 3 s)",
				n, time.Since(changed).Round(time.Millisecond))
		}
		reader.check(t)
		checkPassword(t, d)
	})
}

// Fault 8b: a check_cmd that hangs past -command-timeout, with a child of
// its own. The whole process group is killed, the resource is tried again
// without a new change, and another resource is not held up.
func TestFaultCheckCommandHangs(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	put(t, cli, "/app/other/x", "0")
	files := map[string]string{
		"conf.d/servers.toml": "[template]\nsrc = \"servers.tmpl\"\ndest = \"DEST/servers.conf\"\nkeys = [\"/app/servers\"]\n" +
			"check_cmd = \"if grep -q 'server a hang' {{.src}}; then sleep 300 & echo $! >> DEST/sleep.pids; wait; fi\"\n",
		"templates/servers.tmpl": serversResource["templates/servers.tmpl"],
		"conf.d/other.toml":      "[template]\nsrc = \"other.tmpl\"\ndest = \"DEST/other.conf\"\nkeys = [\"/app/other\"]\n",
		"templates/other.tmpl":   "other={{getv \"/app/other/x\"}}\n",
	}
	dir, out := confDir(t, files)
	dest, other, pidFile := filepath.Join(out, "servers.conf"), filepath.Join(out, "other.conf"), filepath.Join(out, "sleep.pids")
	d := startDaemon(t, nil, "-watch", "-node", e.Endpoints()[0], "-confdir", dir, "-command-timeout", "1s")
	good := renderServers(map[string]string{"a": "1", "b": "1"})
	waitFile(t, dest, good, 20*time.Second)
	waitFile(t, other, "other=0\n", 10*time.Second)
	pid := d.cmd.Process.Pid
	reader := watchFile(dest, wholeAndConsistent)
	base := readUsage(t, pid)

	sleepers := func() []int {
		b, _ := os.ReadFile(pidFile)
		var pids []int
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
		return pids
	}
	putPair(t, cli, "hang")
	hung := time.Now()
	eventually(t, 20*time.Second, "the hanging check to be tried again", func() bool { return len(sleepers()) >= 2 })
	t.Logf("second attempt of the hanging check started %s after the change", time.Since(hung).Round(time.Millisecond))
	d.waitLog(t, "timed out after 1s", 5*time.Second)
	for _, p := range sleepers()[:1] {
		eventually(t, 5*time.Second, fmt.Sprintf("the check's child sleep (pid %d) to be killed", p), func() bool { return !alive(p) })
	}

	changed := time.Now()
	put(t, cli, "/app/other/x", "1")
	waitFile(t, other, "other=1\n", 5*time.Second)
	t.Logf("converge: another resource rendered %s after its change while the check hung", time.Since(changed).Round(time.Millisecond))
	if got := readFile(t, dest); got != good {
		t.Errorf("dest changed while its check hung:\n%s", got)
	}

	putPair(t, cli, "2")
	changed = time.Now()
	waitFile(t, dest, renderServers(map[string]string{"a": "2", "b": "2"}), 10*time.Second)
	t.Logf("converge: dest took the next change %s after it was made, after %d hung checks",
		time.Since(changed).Round(time.Millisecond), len(sleepers()))
	for _, p := range sleepers() {
		eventually(t, 5*time.Second, fmt.Sprintf("the check's child sleep (pid %d) to be killed", p), func() bool { return !alive(p) })
	}
	reader.check(t)
	checkFDs(t, pid, base)
	assertNoStageFiles(t, out)
}

// Fault 10: the destination's file system turns read-only, then fills up.
// The installed file stays as it was, confd logs the error and tries
// again, and it catches up once the file system is writable and has room.
func TestFaultDestUnwritable(t *testing.T) {
	mnt := mountTmpfs(t, 64<<10)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	mustChange(t, cli, 0)
	files := map[string]string{
		"conf.d/servers.toml":    strings.ReplaceAll(serversResource["conf.d/servers.toml"], "DEST", mnt),
		"templates/servers.tmpl": serversResource["templates/servers.tmpl"],
	}
	dir, _ := confDir(t, files)
	dest := filepath.Join(mnt, "servers.conf")
	d := startDaemon(t, nil, "-watch", "-node", e.Endpoints()[0], "-confdir", dir, "-log-level", "debug")
	waitFile(t, dest, renderServers(etcdServers(t, cli)), 20*time.Second)
	pid := d.cmd.Process.Pid
	reader := watchDest(dest)
	base := readUsage(t, pid)

	faults := []struct {
		name       string
		inject     func() (heal func())
		errorInLog string
	}{
		{"read-only", func() func() {
			remount(t, mnt, true)
			return func() { remount(t, mnt, false) }
		}, "read-only file system"},
		{"full", func() func() {
			filler := fillUp(t, mnt)
			return func() {
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
			}
		}, "no space left on device"},
	}
	for i, f := range faults {
		good := readFile(t, dest)
		// The file system as the last install left it: the file it
		// replaced, removed a moment later, would free room in a full one.
		assertNoStageFiles(t, mnt)
		heal := f.inject()
		mustChange(t, cli, i+1)
		// The first failure is logged as an error, the next ones at debug
		// level; both name the cause.
		eventually(t, 15*time.Second, "confd to fail twice", func() bool {
			return strings.Count(d.out.String(), f.errorInLog) >= 2
		})
		if got := readFile(t, dest); got != good {
			t.Errorf("%s: dest changed while it could not be written:\n%s", f.name, got)
		}
		assertNoStageFiles(t, mnt)
		heal()
		healed := time.Now()
		waitConverged(t, dest, etcdServers(t, cli), healed, 15*time.Second)
		t.Logf("%s: converged", f.name)
	}
	reader.check(t)
	checkFDs(t, pid, base)
	assertNoStageFiles(t, mnt)
}
