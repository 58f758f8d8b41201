package etcd

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
	"github.com/etcdconfd/confd/pkg/kv"
)

// recorder keeps every snapshot a mirror delivers.
type recorder struct {
	mu      sync.Mutex
	snaps   []*kv.Snapshot
	changed [][]string
	notify  chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) record(s *kv.Snapshot, changed []string) {
	r.mu.Lock()
	r.snaps = append(r.snaps, s)
	r.changed = append(r.changed, changed)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) last() (*kv.Snapshot, []string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return nil, nil, 0
	}
	return r.snaps[len(r.snaps)-1], r.changed[len(r.changed)-1], len(r.snaps)
}

// waitFor waits until the latest snapshot satisfies cond.
func (r *recorder) waitFor(t *testing.T, what string, timeout time.Duration, cond func(*kv.Snapshot) bool) *kv.Snapshot {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if s, _, _ := r.last(); s != nil && cond(s) {
			return s
		}
		select {
		case <-r.notify:
		case <-deadline:
			s, _, n := r.last()
			var got map[string]string
			if s != nil {
				got = snapshotMap(s)
			}
			t.Fatalf("timed out after %s waiting for %s; %d snapshots, last %v", timeout, what, n, got)
		}
	}
}

// runMirror runs m on prefixes until the test ends.
func runMirror(t *testing.T, m *Mirror, prefixes []string) *recorder {
	t.Helper()
	r := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, prefixes, r.record) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

func equalsEtcd(t *testing.T, c clientv3.KV, s *kv.Snapshot) bool {
	t.Helper()
	want, err := ReadPrefixes(testContext(t, 10*time.Second), c, []string{"/app"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s.Revision() == want.Revision() && reflect.DeepEqual(snapshotMap(s), snapshotMap(want))
}

func TestMirrorFollowsChanges(t *testing.T) {
	s := etcdtest.Start(t)
	c := s.Client(t)
	put(t, c, map[string]string{"/app/a": "1", "/app/b": "1", "/appx/a": "x"})
	log, _ := testLogger()
	r := runMirror(t, NewMirror(c, log, MirrorOptions{}), []string{"/app"})

	first := r.waitFor(t, "the listing", 10*time.Second, func(*kv.Snapshot) bool { return true })
	if got, want := snapshotMap(first), map[string]string{"/app/a": "1", "/app/b": "1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("listing = %v, want %v", got, want)
	}
	if _, changed, _ := r.last(); changed != nil {
		t.Errorf("listing changed = %q, want nil (everything)", changed)
	}

	ctx := testContext(t, 10*time.Second)
	if _, err := c.Put(ctx, "/appx/b", "ignored"); err != nil {
		t.Fatal(err)
	}
	// One transaction changes two keys: no snapshot may show one without
	// the other.
	if _, err := c.Txn(ctx).Then(clientv3.OpPut("/app/a", "2"), clientv3.OpPut("/app/b", "2")).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "/app/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/app/c/d", "3"); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the final state", 10*time.Second, func(s *kv.Snapshot) bool { return equalsEtcd(t, c, s) })

	r.mu.Lock()
	defer r.mu.Unlock()
	for i, snap := range r.snaps {
		m := snapshotMap(snap)
		if a, ok := m["/app/a"]; ok && a != m["/app/b"] {
			t.Errorf("snapshot %d at revision %d shows half a transaction: %v", i, snap.Revision(), m)
		}
		if _, ok := m["/appx/b"]; ok {
			t.Errorf("snapshot %d holds /appx/b", i)
		}
		if i > 0 && snap.Revision() <= r.snaps[i-1].Revision() {
			t.Errorf("snapshot %d revision %d after %d", i, snap.Revision(), r.snaps[i-1].Revision())
		}
	}
	var all []string
	for _, ch := range r.changed[1:] {
		all = append(all, ch...)
	}
	sort.Strings(all)
	if want := []string{"/app/a", "/app/a", "/app/b", "/app/c/d"}; !reflect.DeepEqual(all, want) {
		t.Errorf("changed keys = %q, want %q", all, want)
	}
}

func TestMirrorDetectsSilentWatchAndCompaction(t *testing.T) {
	s := etcdtest.Start(t)
	direct := s.Client(t)
	put(t, direct, map[string]string{"/app/a": "1"})
	proxy := etcdtest.NewProxy(t, hostPort(s.Endpoints()[0]))
	c, _, err := newTestClient(t, Config{Endpoints: []string{proxy.Endpoint()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log, buf := testLogger()
	obs := &stateRecorder{}
	r := runMirror(t, NewMirror(c, log, MirrorOptions{
		StaleTimeout:   1500 * time.Millisecond,
		MinBackoff:     50 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		RequestTimeout: time.Second,
		Observer:       obs,
	}), []string{"/app"})
	r.waitFor(t, "the listing", 10*time.Second, func(s *kv.Snapshot) bool { return s.Len() == 1 })

	// The network stops delivering while etcd changes and compacts away
	// the revisions the watch would need.
	proxy.Blackhole()
	put(t, direct, map[string]string{"/app/a": "2", "/app/b": "2"})
	resp, err := direct.Delete(testContext(t, 10*time.Second), "/app/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Compact(testContext(t, 10*time.Second), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "etcd unavailable") {
		if time.Now().After(deadline) {
			t.Fatalf("silent watch not detected; log:\n%s", buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), "watch went silent") {
		t.Errorf("log does not say the watch went silent:\n%s", buf)
	}

	proxy.Heal()
	last := r.waitFor(t, "catching up after healing", 20*time.Second, func(s *kv.Snapshot) bool { return equalsEtcd(t, direct, s) })
	for _, want := range []string{"etcd back", "compacted, listing again"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, buf)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if want := []bool{true, false, true}; !reflect.DeepEqual(obs.states, want) {
		t.Errorf("observer states = %v, want %v", obs.states, want)
	}
	if obs.failures < 1 {
		t.Errorf("observer saw no failure while the watch was silent")
	}
	if obs.reconnects < 1 || obs.compactions != 1 {
		t.Errorf("observer saw %d reconnects and %d compactions, want >= 1 and 1", obs.reconnects, obs.compactions)
	}
	if obs.revision != last.Revision() {
		t.Errorf("observer revision = %d, want %d", obs.revision, last.Revision())
	}
}

func TestMirrorIdleWatchStaysHealthy(t *testing.T) {
	s := etcdtest.Start(t)
	c := s.Client(t)
	put(t, c, map[string]string{"/app/a": "1"})
	log, buf := testLogger()
	r := runMirror(t, NewMirror(c, log, MirrorOptions{StaleTimeout: 900 * time.Millisecond}), []string{"/app"})
	r.waitFor(t, "the listing", 10*time.Second, func(s *kv.Snapshot) bool { return s.Len() == 1 })
	// Nothing is written anywhere: progress requests must still be
	// answered, so the watch is never taken for dead.
	time.Sleep(3 * time.Second)
	if strings.Contains(buf.String(), "unavailable") {
		t.Fatalf("an idle, healthy watch was taken for dead:\n%s", buf)
	}
	put(t, c, map[string]string{"/app/a": "2"})
	r.waitFor(t, "the change", 10*time.Second, func(snap *kv.Snapshot) bool { return equalsEtcd(t, c, snap) })
	if _, _, n := r.last(); n != 2 {
		t.Errorf("%d snapshots, want the listing and one change", n)
	}
}

func TestMirrorSurvivesRestart(t *testing.T) {
	s := etcdtest.Start(t)
	c := s.Client(t)
	put(t, c, map[string]string{"/app/a": "1"})
	log, _ := testLogger()
	r := runMirror(t, NewMirror(c, log, MirrorOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}), []string{"/app"})
	r.waitFor(t, "the listing", 10*time.Second, func(s *kv.Snapshot) bool { return s.Len() == 1 })

	s.Stop()
	time.Sleep(300 * time.Millisecond)
	s.Restart(t)
	put(t, c, map[string]string{"/app/a": "2", "/app/new": "n"})
	r.waitFor(t, "the change after restart", 30*time.Second, func(snap *kv.Snapshot) bool { return equalsEtcd(t, c, snap) })
}

// TestMirrorLogsLostConnection checks that a watch whose connection to
// etcd is gone says so at once, long before the stale timeout, and that
// etcd is back as soon as it answers, even when nothing changed meanwhile.
func TestMirrorLogsLostConnection(t *testing.T) {
	s := etcdtest.Start(t)
	c := s.Client(t)
	put(t, c, map[string]string{"/app/a": "1"})
	log, buf := testLogger()
	obs := &stateRecorder{}
	r := runMirror(t, NewMirror(c, log, MirrorOptions{
		StaleTimeout: time.Minute,
		MinBackoff:   50 * time.Millisecond,
		MaxBackoff:   500 * time.Millisecond,
		Observer:     obs,
	}), []string{"/app"})
	r.waitFor(t, "the listing", 10*time.Second, func(s *kv.Snapshot) bool { return s.Len() == 1 })

	s.Stop()
	waitLog := func(what, want string, after int) int {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if i := strings.Index(buf.String()[after:], want); i >= 0 {
				return after + i
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q not logged; log:\n%s", what, want, buf)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopped := time.Now()
	down := waitLog("etcd stopped", "etcd unavailable", 0)
	if d := time.Since(stopped); d > 10*time.Second {
		t.Errorf("the lost connection was logged after %s", d)
	}
	if !strings.Contains(buf.String(), errNoConnection.Error()) {
		t.Errorf("log does not say %q:\n%s", errNoConnection, buf)
	}
	s.Restart(t)
	waitLog("etcd restarted", "etcd back", down)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if want := []bool{true, false, true}; !reflect.DeepEqual(obs.states, want) {
		t.Errorf("observer states = %v, want %v", obs.states, want)
	}
	if _, _, n := r.last(); n != 1 {
		t.Errorf("%d snapshots, want the listing only: nothing changed", n)
	}
}

func hostPort(endpoint string) string {
	_, hp, _ := strings.Cut(endpoint, "://")
	return hp
}
