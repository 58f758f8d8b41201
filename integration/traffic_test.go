package integration

// The client side of the tests that run confd in front of a real proxy
// (HAProxy, nginx):
//
//   - startTraffic: clients that send requests through the proxy without
//     pause, from one or more connections at once, and record which backend
//     answered each request, in the order the answers came;
//   - serves, waitServes: send a batch of requests and check which backends
//     answered; fetchStatus: one request's status.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// settleRequests consecutive requests must reach exactly the
	// registered backends before a step counts as done.
	settleRequests = 60
	// maxTrafficRequests and maxTrafficTime bound the traffic of a test.
	maxTrafficRequests = 20000
	maxTrafficTime     = 60 * time.Second
	// requestTimeout bounds one request through a proxy. It is generous
	// because a loaded machine running the race detector can be slow; a
	// dropped connection fails at once, not by timing out.
	requestTimeout = 15 * time.Second
	// maxFailures is how many failed requests traffic keeps for the report.
	maxFailures = 10
)

// newConnClient sends every request on a new connection, straight to the
// address in the URL (no proxy from the environment), so that each request
// goes through the proxy's listening socket.
func newConnClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

// keepAliveClient keeps one connection open between requests, as a browser
// or another proxy would. When the server closes it before a request gets
// there, the client sends the request again on a new connection.
func keepAliveClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
}

// fetch sends one GET and returns the body of a 200 answer, which names
// the backend, and the number of connections the client used for it: more
// than one when it sent the request again because the server had closed a
// kept-alive connection.
func fetch(ctx context.Context, client *http.Client, url string) (name string, conns int, err error) {
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", conns, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", conns, fmt.Errorf("status %d: %.200q", resp.StatusCode, body)
	}
	return string(body), conns, nil
}

// answer is what traffic recorded of one request.
type answer struct {
	name   string // the backend that answered, "" for a failure
	at     time.Time
	resent bool // sent again by the client on a new connection
}

// trafficStats sums up a run of answers.
type trafficStats struct {
	sent, failed, resent int
	hits                 map[string]int       // answers by backend
	first, last          map[string]time.Time // first and last answer by backend
	lastName             string               // the backend of the latest answer, "" after a failure
	streak               int                  // answers in a row from lastName
}

func newTrafficStats() trafficStats {
	return trafficStats{hits: map[string]int{}, first: map[string]time.Time{}, last: map[string]time.Time{}}
}

// add counts one more answer.
func (s *trafficStats) add(a answer) {
	s.sent++
	if a.resent {
		s.resent++
	}
	if a.name == "" {
		s.failed++
		s.lastName, s.streak = "", 0
		return
	}
	s.hits[a.name]++
	if s.first[a.name].IsZero() {
		s.first[a.name] = a.at
	}
	s.last[a.name] = a.at
	if a.name == s.lastName {
		s.streak++
	} else {
		s.lastName, s.streak = a.name, 1
	}
}

func (s trafficStats) clone() trafficStats {
	s.hits, s.first, s.last = maps.Clone(s.hits), maps.Clone(s.first), maps.Clone(s.last)
	return s
}

func (s trafficStats) String() string {
	names := slices.Sorted(maps.Keys(s.hits))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", n, s.hits[n]))
	}
	return fmt.Sprintf("sent %d requests, %d failed, %d sent again (answered by %s; at the end %d in a row by %q)",
		s.sent, s.failed, s.resent, strings.Join(parts, " "), s.streak, s.lastName)
}

// traffic sends GET requests through a proxy from several clients at once,
// each sending its next request when the previous one is answered. A
// request fails when it gets no answer, a status other than 200 or a body
// other than one of the backend names it was given.
type traffic struct {
	names  []string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed when every client has stopped
	start  time.Time
	end    time.Time // set before done is closed

	mu       sync.Mutex
	inflight int
	log      []answer     // every answer, in the order they came
	total    trafficStats // of log
	errs     []string     // the first failures
	over     string       // why the traffic stopped on its own
}

// startTraffic sends requests to url from each of clients until stop is
// called, maxTrafficRequests were sent or maxTrafficTime passed. names are
// the bodies that count as answers. It is stopped when the test ends.
func startTraffic(t *testing.T, url string, names []string, clients ...*http.Client) *traffic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxTrafficTime)
	tr := &traffic{names: names, cancel: cancel, done: make(chan struct{}), start: time.Now(), total: newTrafficStats()}
	for _, client := range clients {
		tr.wg.Add(1)
		go tr.run(ctx, client, url)
	}
	go func() {
		tr.wg.Wait()
		tr.end = time.Now()
		close(tr.done)
	}()
	t.Cleanup(func() { tr.stop() })
	return tr
}

func (tr *traffic) run(ctx context.Context, client *http.Client, url string) {
	defer tr.wg.Done()
	defer client.CloseIdleConnections()
	for tr.reserve(ctx) {
		name, conns, err := fetch(ctx, client, url)
		if err == nil && !slices.Contains(tr.names, name) {
			err = fmt.Errorf("unexpected answer %q", name)
		}
		tr.record(ctx, name, conns > 1, err)
	}
}

// reserve takes a slot for one more request, if the limits allow it.
func (tr *traffic) reserve(ctx context.Context) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	switch {
	case tr.over != "":
		return false
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		tr.over = "time limit"
		return false
	case ctx.Err() != nil:
		return false
	case len(tr.log)+tr.inflight >= maxTrafficRequests:
		tr.over = fmt.Sprintf("%d requests sent", maxTrafficRequests)
		return false
	}
	tr.inflight++
	return true
}

func (tr *traffic) record(ctx context.Context, name string, resent bool, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.inflight--
	if err != nil && ctx.Err() != nil {
		return // cut short by stop: not a request that was answered
	}
	a := answer{name: name, at: time.Now(), resent: resent}
	if err != nil {
		a.name = ""
		if len(tr.errs) < maxFailures {
			tr.errs = append(tr.errs, fmt.Sprintf("request %d: %v", len(tr.log)+1, err))
		}
	}
	tr.log = append(tr.log, a)
	tr.total.add(a)
}

// stop stops sending, waits for the clients and returns the stats of all
// requests.
func (tr *traffic) stop() trafficStats {
	tr.cancel()
	<-tr.done
	return tr.stats(0, -1)
}

// running reports whether requests are still being sent.
func (tr *traffic) running() bool { return !isClosed(tr.done) }

// mark is the number of requests answered so far: the index of the next
// one.
func (tr *traffic) mark() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.log)
}

// stats sums up the requests [from, to); to < 0 means up to now.
func (tr *traffic) stats(from, to int) trafficStats {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if to < 0 || to > len(tr.log) {
		to = len(tr.log)
	}
	if from == 0 && to == len(tr.log) {
		return tr.total.clone()
	}
	s := newTrafficStats()
	for _, a := range tr.log[from:to] {
		s.add(a)
	}
	return s
}

// failures returns the first failed requests.
func (tr *traffic) failures() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.errs)
}

// stopped says why the traffic stopped, for a failure message.
func (tr *traffic) stopped() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.over == "" {
		return "stopped by the test"
	}
	return tr.over
}

// waitFor polls the stats of all requests until cond holds, and returns
// them. It fails the test after timeout, or when the traffic stopped first.
func (tr *traffic) waitFor(t *testing.T, what string, timeout time.Duration, cond func(trafficStats) bool) trafficStats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := tr.stats(0, -1)
		switch {
		case cond(s):
			return s
		case !tr.running():
			t.Fatalf("waiting for %s: the traffic stopped (%s): %s; first failures: %q", what, tr.stopped(), s, tr.failures())
		case time.Now().After(deadline):
			t.Fatalf("timed out after %s waiting for %s: %s; first failures: %q", timeout, what, s, tr.failures())
		}
		time.Sleep(5 * time.Millisecond)
	}
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

// settle waits until n consecutive requests answered from request number
// from on were answered only by the backends in want, each of them at
// least once, and returns the number of the first of those requests. It
// fails the test after timeout, or when the traffic stopped first.
func (tr *traffic) settle(t *testing.T, from int, want []string, n int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tr.mu.Lock()
		// The latest window of n requests after from.
		at := -1
		if len(tr.log)-from >= n {
			at = len(tr.log) - n
			names := make([]string, 0, n)
			for _, a := range tr.log[at:] {
				names = append(names, a.name)
			}
			if !onlyAndEvery(names, want) {
				at = -1
			}
		}
		tr.mu.Unlock()
		switch {
		case at >= 0:
			return at
		case !tr.running():
			t.Fatalf("traffic stopped (%s: %s) before %d consecutive requests were answered by exactly %v", tr.stopped(), tr.stats(from, -1), n, want)
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
	for _, name := range slices.Sorted(maps.Keys(s.hits)) {
		if !slices.Contains(want, name) {
			t.Errorf("after settling, %d requests were answered by %s, want only %v", s.hits[name], name, want)
		}
	}
}

// serves sends n requests to url, one after the other, each on a new
// connection, and reports whether all of them succeeded and were answered
// only by backends in want, each at least once; got says what happened.
func serves(url string, want []string, n int) (ok bool, got string) {
	client := newConnClient(requestTimeout)
	var names []string
	hits := map[string]int{}
	for range n {
		name, _, err := fetch(context.Background(), client, url)
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
	resp, err := newConnClient(requestTimeout).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, nil
}
