package integration

// Helpers for tests that run confd in front of a real proxy (HAProxy,
// nginx); the client side is in traffic_test.go:
//
//   - requireProgram: find the proxy, or skip (fail under CI);
//   - startBackend: an HTTP server on 127.0.0.1 that answers with its name,
//     and can hold requests open across reloads;
//   - startGroup: a process in its own process group, killed with the whole
//     group when the test ends;
//   - deleteKey: delete a key in etcd.

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/syncio"
)

// requireProgram returns the path of program. When it is not installed the
// test is skipped, or fails when the environment variable CI is set, so
// that CI cannot pass without running it.
func requireProgram(t *testing.T, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI is set: install it (.ci/run does): %v", program, err)
	}
	t.Skipf("%s is not installed; install it to run this test (apt-get install %s)", program, program)
	return ""
}

// backend is an HTTP server on 127.0.0.1 that answers every request with
// status 200 and its name as the body. Requests for /slow are held until
// release is called, the client goes away or 30 s pass, like long requests
// that a proxy must let finish across a reload.
type backend struct {
	name        string
	srv         *httptest.Server
	held        atomic.Int32 // /slow requests that have arrived
	hold        chan struct{}
	releaseOnce sync.Once
}

// startBackend starts a backend called name; it is closed when the test
// ends, after the requests it holds are released.
func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name, hold: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.held.Add(1)
			select {
			case <-b.hold:
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	t.Cleanup(b.release) // runs first
	return b
}

// release lets the held /slow requests, and those still to come, finish.
func (b *backend) release() { b.releaseOnce.Do(func() { close(b.hold) }) }

// addr is the backend's host:port, an IP literal.
func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// group is a process started in a process group of its own, with its
// output collected.
type group struct {
	name string
	cmd  *exec.Cmd
	out  *syncio.Buffer
	done chan struct{}
	err  error
}

// startGroup starts program with args in a new process group. When the
// test ends the whole group gets SIGTERM, then SIGKILL if the program has
// not exited within 10 s, and its output is logged.
func startGroup(t *testing.T, program string, args ...string) *group {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g := &group{name: program, cmd: cmd, out: &syncio.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = g.out, g.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", program, err)
	}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.stop(t)
		t.Logf("%s %s output:\n%s", program, strings.Join(args, " "), g.out)
	})
	return g
}

// exited reports whether the program has exited.
func (g *group) exited() bool { return isClosed(g.done) }

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// stop ends the whole process group: SIGTERM, and SIGKILL after 10 s. The
// group is killed again afterwards, for children that outlived the leader.
func (g *group) stop(t *testing.T) {
	t.Helper()
	pgid := g.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10 s of SIGTERM; killing its process group", g.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-g.done
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill process group of %s: %v", g.name, err)
	}
}

// deleteKey deletes key in etcd.
func deleteKey(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	if _, err := cli.Delete(ctx10(t), key); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}
