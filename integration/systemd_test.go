package integration

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// notifySocket is a fake systemd notification socket: it records every
// datagram confd sends to it.
type notifySocket struct {
	path string
	msgs chan string
}

// listenNotify listens on a unixgram socket in a temporary directory until
// the test ends.
func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	s := &notifySocket{path: path, msgs: make(chan string, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			select {
			case s.msgs <- string(buf[:n]):
			default: // the test stopped reading
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// next returns the next datagram, or fails the test after timeout.
func (s *notifySocket) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(timeout):
		t.Fatalf("no notification within %s", timeout)
		return ""
	}
}

// waitFor reads datagrams until one is want and returns those read before
// it; it fails the test when want does not come within timeout.
func (s *notifySocket) waitFor(t *testing.T, want string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	var before []string
	for {
		select {
		case m := <-s.msgs:
			if m == want {
				return before
			}
			before = append(before, m)
		case <-deadline:
			t.Fatalf("no %q within %s; got %q", want, timeout, before)
			return nil
		}
	}
}

// countPings counts WATCHDOG=1 among msgs.
func countPings(msgs []string) int {
	n := 0
	for _, m := range msgs {
		if m == "WATCHDOG=1" {
			n++
		}
	}
	return n
}

func TestSystemdNotifyWatch(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "1")
	// Both checks take a while, so that an early READY=1 shows; one of them
	// always fails, which must not hold READY=1 back.
	dir, out := confDir(t, map[string]string{
		"conf.d/servers.toml":    "[template]\nsrc = \"servers.tmpl\"\ndest = \"DEST/servers.conf\"\nkeys = [\"/app/servers\"]\ncheck_cmd = \"sleep 0.5\"\n",
		"conf.d/failing.toml":    "[template]\nsrc = \"servers.tmpl\"\ndest = \"DEST/failing.conf\"\nkeys = [\"/app/servers\"]\ncheck_cmd = \"sleep 0.3; exit 1\"\n",
		"templates/servers.tmpl": serversResource["templates/servers.tmpl"],
	})
	dest := filepath.Join(out, "servers.conf")
	sock := listenNotify(t)
	// No WATCHDOG_PID: it would have to be confd's own pid.
	d := startDaemon(t, []string{"NOTIFY_SOCKET=" + sock.path, "WATCHDOG_USEC=200000"},
		"-watch", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir)

	sock.waitFor(t, "READY=1", 20*time.Second)
	if got, want := readFile(t, dest), renderServers(map[string]string{"a": "1", "b": "1"}); got != want {
		t.Errorf("at READY=1, %s holds:\n%s\nwant:\n%s", dest, got, want)
	}
	if !strings.Contains(d.out.String(), "check failed") {
		t.Error("READY=1 came before the failing resource's first try")
	}
	assertMissing(t, filepath.Join(out, "failing.conf"))

	// Pings every 100 ms: at least 5 in a second and a half.
	var msgs []string
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); {
		msgs = append(msgs, sock.next(t, 2*time.Second))
	}
	if n := countPings(msgs); n < 5 {
		t.Errorf("%d watchdog pings in 1.5 s with WATCHDOG_USEC=200000, want at least 5; got %q", n, msgs)
	}

	// SIGHUP: RELOADING=1, then READY=1 once the new configuration ran.
	d.signal(t, syscall.SIGHUP)
	sock.waitFor(t, "RELOADING=1", 10*time.Second)
	sock.waitFor(t, "READY=1", 20*time.Second)

	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("confd exited %d on SIGTERM", code)
	}
	sock.waitFor(t, "STOPPING=1", 5*time.Second)
}

func TestSystemdNotifyInterval(t *testing.T) {
	dir, out := confDir(t, map[string]string{
		"conf.d/app.toml":    "[template]\nsrc = \"app.tmpl\"\ndest = \"DEST/app.conf\"\nkeys = [\"/app\"]\ncheck_cmd = \"sleep 0.5\"\n",
		"templates/app.tmpl": "name={{getv \"/app/name\"}}\n",
	})
	dest := filepath.Join(out, "app.conf")
	sock := listenNotify(t)
	d := startDaemon(t, []string{"NOTIFY_SOCKET=" + sock.path, "APP_NAME=web"},
		"-backend", "env", "-interval", "3600", "-confdir", dir)

	before := sock.waitFor(t, "READY=1", 20*time.Second)
	if got, want := readFile(t, dest), "name=web\n"; got != want {
		t.Errorf("at READY=1, %s holds %q, want %q", dest, got, want)
	}
	// Without WATCHDOG_USEC there is no watchdog.
	if n := countPings(before); n != 0 {
		t.Errorf("%d watchdog pings without WATCHDOG_USEC", n)
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("confd exited %d on SIGTERM", code)
	}
	sock.waitFor(t, "STOPPING=1", 5*time.Second)
}

func TestSystemdNotifyNoResources(t *testing.T) {
	dir, _ := confDir(t, nil)
	sock := listenNotify(t)
	startDaemon(t, []string{"NOTIFY_SOCKET=" + sock.path, "APP_NAME=web"},
		"-backend", "env", "-interval", "3600", "-confdir", dir)
	sock.waitFor(t, "READY=1", 20*time.Second)
}
