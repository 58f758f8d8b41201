package integration

// Helpers for tests that run confd in front of a real proxy (HAProxy,
// nginx):
//
//   - requireProgram: find the proxy, or skip (fail under CI);
//   - startBackend: an HTTP server on 127.0.0.1 that answers with its name;
//   - freePort: a loopback port to render into a proxy's configuration;
//   - startGroup: a process in its own process group, killed with the whole
//     group when the test ends;
//   - startTraffic: a client that sends requests through the proxy, one new
//     connection each, records which backend answered each one and counts
//     failures; settle and only check what it saw;
//   - serves, waitServes: send a batch of requests and check which backends
//     answered; fetchStatus: one request's status;
//   - deleteKey: delete a key in etcd.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// settleRequests consecutive requests must reach exactly the
	// registered backends before a step counts as done.
	settleRequests = 60
	// maxTrafficRequests and maxTrafficTime bound the traffic of a test.
	maxTrafficRequests = 20000
	maxTrafficTime     = 60 * time.Second
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
// status 200 and its name as the body.
type backend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
}

// startBackend starts a backend called name; it is closed when the test
// ends.
func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.hits.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// addr is the backend's host:port, an IP literal.
func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// group is a process started in a process group of its own, with its
// output collected.
type group struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
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
	g := &group{name: program, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
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
func (g *group) exited() bool {
	select {
	case <-g.done:
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

// proxyClient sends every request on a new connection, straight to the
// address in the URL (no proxy from the environment), so that each request
// goes through the proxy's listening socket.
func proxyClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
}

// fetch sends one GET and returns the body of a 200 answer, which names
// the backend, or an error.
func fetch(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %q", resp.StatusCode, body)
	}
	return string(body), nil
}

// traffic is a client sending requests one after the other through a
// proxy, each on a new connection.
type traffic struct {
	stopping atomic.Bool
	done     chan struct{}
	start    time.Time

	mu   sync.Mutex
	got  []string // per request: the backend that answered, "" for a failure
	errs []string // the first failures
	end  time.Time
}

// startTraffic sends requests to url until stop is called, max requests
// were sent or maxTime passed. It is stopped when the test ends.
func startTraffic(t *testing.T, url string, max int, maxTime time.Duration) *traffic {
	t.Helper()
	tr := &traffic{done: make(chan struct{}), start: time.Now()}
	deadline := tr.start.Add(maxTime)
	client := proxyClient()
	go func() {
		defer close(tr.done)
		for i := 0; i < max && !tr.stopping.Load() && time.Now().Before(deadline); i++ {
			name, err := fetch(client, url)
			tr.mu.Lock()
			tr.got = append(tr.got, name)
			if err != nil && len(tr.errs) < 10 {
				tr.errs = append(tr.errs, fmt.Sprintf("request %d: %v", i+1, err))
			}
			tr.mu.Unlock()
		}
		tr.mu.Lock()
		tr.end = time.Now()
		tr.mu.Unlock()
	}()
	t.Cleanup(tr.stop)
	return tr
}

// stop stops sending and waits for the request in flight.
func (tr *traffic) stop() {
	tr.stopping.Store(true)
	<-tr.done
}

// mark is the number of requests sent so far: the index of the next one.
func (tr *traffic) mark() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.got)
}

// running reports whether requests are still being sent.
func (tr *traffic) running() bool {
	select {
	case <-tr.done:
		return false
	default:
		return true
	}
}

// trafficStats sums up requests [from, to).
type trafficStats struct {
	sent, failed int
	hits         map[string]int
}

func (s trafficStats) String() string {
	names := make([]string, 0, len(s.hits))
	for n := range s.hits {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", n, s.hits[n]))
	}
	return fmt.Sprintf("sent %d requests, %d failed (answered by %s)", s.sent, s.failed, strings.Join(parts, " "))
}

// stats sums up the requests [from, to); to < 0 means up to now.
func (tr *traffic) stats(from, to int) trafficStats {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if to < 0 || to > len(tr.got) {
		to = len(tr.got)
	}
	s := trafficStats{hits: map[string]int{}}
	for _, name := range tr.got[from:to] {
		s.sent++
		if name == "" {
			s.failed++
			continue
		}
		s.hits[name]++
	}
	return s
}

// failures returns the first failed requests.
func (tr *traffic) failures() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.errs)
}

// onlyAndEvery reports whether names are all in want and include each of
// want.
func onlyAndEvery(names []string, want []string) bool {
	seen := map[string]bool{}
	for _, n := range names {
		if !slices.Contains(want, n) {
			return false
		}
		seen[n] = true
	}
	return len(seen) == len(want)
}

// settle waits until n consecutive requests sent from request number from
// on were answered only by the backends in want, each of them at least
// once, and returns the number of the first of those requests. It fails
// the test after timeout, or when the traffic stopped first.
func (tr *traffic) settle(t *testing.T, from int, want []string, n int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tr.mu.Lock()
		// The latest window of n requests after from.
		at := -1
		if len(tr.got)-from >= n {
			at = len(tr.got) - n
			if !onlyAndEvery(tr.got[at:], want) {
				at = -1
			}
		}
		tr.mu.Unlock()
		switch {
		case at >= 0:
			return at
		case !tr.running():
			t.Fatalf("traffic stopped (%s) before %d consecutive requests were answered by exactly %v", tr.stats(from, -1), n, want)
		case time.Now().After(deadline):
			t.Fatalf("timed out after %s waiting for %d consecutive requests answered by exactly %v; since the change: %s", timeout, n, want, tr.stats(from, -1))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// only checks that requests [from, to) were answered by backends in want
// and no other; to < 0 means up to now.
func (tr *traffic) only(t *testing.T, from, to int, want []string) {
	t.Helper()
	s := tr.stats(from, to)
	for name, hits := range s.hits {
		if !slices.Contains(want, name) {
			t.Errorf("after settling, %d requests were answered by %s, want only %v", hits, name, want)
		}
	}
}

// serves sends n requests to url, one after the other, and reports whether
// all of them succeeded and were answered only by backends in want, each
// at least once; got says what happened.
func serves(url string, want []string, n int) (ok bool, got string) {
	client := proxyClient()
	var names []string
	hits := map[string]int{}
	for range n {
		name, err := fetch(client, url)
		if err != nil {
			return false, err.Error()
		}
		names = append(names, name)
		hits[name]++
	}
	return onlyAndEvery(names, want), fmt.Sprint(hits)
}

// waitServes waits until a batch of n requests to url is answered by
// exactly the backends in want (see serves).
func waitServes(t *testing.T, url string, want []string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, got := serves(url, want, n)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s to be served by exactly %v; last batch: %s", timeout, url, want, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetchStatus sends one GET to url and returns the status code.
func fetchStatus(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := proxyClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, nil
}

// deleteKey deletes key in etcd.
func deleteKey(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	if _, err := cli.Delete(ctx10(t), key); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}
