package processor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdconfd/confd/pkg/filesync"
	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/resource"
)

// fakeWatcher hands the test the function a Processor gives to Run, so the
// test decides which snapshots arrive and when.
type fakeWatcher struct {
	fn chan func(*kv.Snapshot, []string)
}

func (f *fakeWatcher) Run(ctx context.Context, _ []string, fn func(*kv.Snapshot, []string)) error {
	f.fn <- fn
	<-ctx.Done()
	return nil
}

// countingSyncer counts syncs per destination and can hold them back.
type countingSyncer struct {
	next  *filesync.Syncer
	gate  chan struct{} // when not nil, every sync waits for a receive
	delay time.Duration // every sync sleeps this long first, as a slow render would
	mu    sync.Mutex
	syncs map[string]int
}

func (c *countingSyncer) SyncContent(ctx context.Context, t filesync.Target, content filesync.Content) (filesync.Result, error) {
	c.mu.Lock()
	c.syncs[filepath.Base(t.Dest)]++
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	time.Sleep(c.delay)
	return c.next.SyncContent(ctx, t, content)
}

func (c *countingSyncer) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs[name]
}

// startWatch runs p.Watch until the test ends and returns the function
// that delivers snapshots.
func startWatch(t *testing.T, p *Processor, opts DaemonOptions) func(*kv.Snapshot, []string) {
	t.Helper()
	w := &fakeWatcher{fn: make(chan func(*kv.Snapshot, []string))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, w, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return <-w.fn
}

func waitContent(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("%s = %q, want %q", filepath.Base(path), b, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitExists waits up to 10 s for path to exist, and fails with msg.
func waitExists(t *testing.T, path, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newCounting(t *testing.T, gate chan struct{}) *countingSyncer {
	return &countingSyncer{next: testSyncer(t, filesync.Options{}), gate: gate, syncs: map[string]int{}}
}

func TestWatchCoalescesBursts(t *testing.T) {
	dir := t.TempDir()
	r := newResource(t, dir, "a", `v={{getv "/a/v"}}`, "/a")
	gate := make(chan struct{})
	syncer := newCounting(t, gate)
	p, _ := New(quietLogger(), nil, syncer, []resource.Resource{r}, Options{})
	deliver := startWatch(t, p, DaemonOptions{})

	snap := kv.FromMap(1, map[string]string{"/a/v": "0"})
	deliver(snap, nil)
	// The first render waits at the gate while 1,000 changes arrive.
	for i := 1; i <= 1000; i++ {
		snap = snap.Apply(int64(i+1), []kv.Change{{Key: "/a/v", Value: fmt.Sprint(i)}})
		deliver(snap, []string{"/a/v"})
	}
	close(gate)
	waitContent(t, r.Dest, "v=1000")
	if n := syncer.count("a.out"); n > 2 {
		t.Errorf("%d renders for a burst held behind one render, want at most 2", n)
	}
}

func TestWatchRendersOnlyAffectedResources(t *testing.T) {
	dir := t.TempDir()
	a := newResource(t, dir, "a", `{{getv "/a/v"}}`, "/a")
	b := newResource(t, dir, "b", `{{getv "/b/v"}}`, "/b")
	syncer := newCounting(t, nil)
	p, _ := New(quietLogger(), nil, syncer, []resource.Resource{a, b}, Options{})
	deliver := startWatch(t, p, DaemonOptions{})

	snap := kv.FromMap(1, map[string]string{"/a/v": "1", "/b/v": "1", "/bx": "x"})
	deliver(snap, nil)
	waitContent(t, a.Dest, "1")
	waitContent(t, b.Dest, "1")
	snap = snap.Apply(2, []kv.Change{{Key: "/a/v", Value: "2"}, {Key: "/bx", Value: "y"}})
	deliver(snap, []string{"/a/v", "/bx"})
	waitContent(t, a.Dest, "2")
	if n := syncer.count("b.out"); n != 1 {
		t.Errorf("b rendered %d times, want once: /a/v and /bx are not its keys", n)
	}
}

func TestWatchRetriesFailuresWithoutNewChange(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "failed-once")
	r := newResource(t, dir, "a", `{{getv "/a/v"}}`, "/a")
	// The check fails the first time only; the reload fails the first
	// time only. Both must be retried without another change.
	r.CheckCmd = "test -e " + marker + ".check || { touch " + marker + ".check; exit 1; }"
	r.ReloadCmd = "test -e " + marker + ".reload || { touch " + marker + ".reload; exit 1; }; touch " + marker + ".reloaded"
	syncer := newCounting(t, nil)
	p, _ := New(quietLogger(), nil, syncer, []resource.Resource{r}, Options{})
	deliver := startWatch(t, p, DaemonOptions{MinRetry: 10 * time.Millisecond, MaxRetry: 50 * time.Millisecond})

	deliver(kv.FromMap(1, map[string]string{"/a/v": "1"}), nil)
	waitContent(t, r.Dest, "1")
	waitExists(t, marker+".reloaded", "the failed reload was never run again")
}

func TestWatchWaitsForQuiescence(t *testing.T) {
	dir := t.TempDir()
	r := newResource(t, dir, "a", `{{getv "/a/v"}}`, "/a")
	// The quiet period is long against the 20 ms between changes, so that
	// a stall of the host (hundreds of milliseconds at its busiest) does
	// not pass for one.
	const quiet = time.Second
	r.WaitMin, r.WaitMax = quiet, 5*time.Second
	syncer := newCounting(t, nil)
	p, _ := New(quietLogger(), nil, syncer, []resource.Resource{r}, Options{})
	deliver := startWatch(t, p, DaemonOptions{})

	snap := kv.FromMap(1, map[string]string{"/a/v": "0"})
	start := time.Now()
	deliver(snap, nil)
	for i := 1; i <= 5; i++ {
		snap = snap.Apply(int64(i+1), []kv.Change{{Key: "/a/v", Value: fmt.Sprint(i)}})
		deliver(snap, []string{"/a/v"})
		time.Sleep(20 * time.Millisecond)
	}
	waitContent(t, r.Dest, "5")
	if elapsed := time.Since(start); elapsed < quiet {
		t.Errorf("rendered after %s, before the %s quiet period", elapsed, quiet)
	}
	if n := syncer.count("a.out"); n != 1 {
		t.Errorf("%d renders, want 1 after the changes settled", n)
	}
}

func TestWatchStopsWithoutLeaks(t *testing.T) {
	dir := t.TempDir()
	r := newResource(t, dir, "a", `{{getv "/a/v"}}`, "/a")
	p, _ := New(quietLogger(), nil, newCounting(t, nil), []resource.Resource{r}, Options{})
	w := &fakeWatcher{fn: make(chan func(*kv.Snapshot, []string))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = p.Watch(ctx, w, DaemonOptions{Interval: time.Hour})
		close(done)
	}()
	(<-w.fn)(kv.FromMap(1, map[string]string{"/a/v": "1"}), nil)
	waitContent(t, r.Dest, "1")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestWatchCoalescesSteadyBursts(t *testing.T) {
	dir := t.TempDir()
	r := newResource(t, dir, "a", `v={{getv "/a/v"}}`, "/a")
	syncer := newCounting(t, nil)
	// Each render takes longer than the gap between changes, so that one
	// change or more arrives while it runs, before its file is in place.
	syncer.delay = 3 * time.Millisecond
	p, _ := New(quietLogger(), nil, syncer, []resource.Resource{r}, Options{})
	deliver := startWatch(t, p, DaemonOptions{})

	snap := kv.FromMap(1, map[string]string{"/a/v": "0"})
	deliver(snap, nil)
	waitContent(t, r.Dest, "v=0")
	// 200 changes, one every 2 ms. Without coalescing that is a render
	// per change or two; a render in a burst waits for the changes to
	// settle (here burstMax, since they never pause).
	for i := 1; i <= 200; i++ {
		snap = snap.Apply(int64(i+1), []kv.Change{{Key: "/a/v", Value: fmt.Sprint(i)}})
		deliver(snap, []string{"/a/v"})
		time.Sleep(2 * time.Millisecond)
	}
	waitContent(t, r.Dest, "v=200")
	if n := syncer.count("a.out"); n > 40 {
		t.Errorf("%d renders for a steady stream of 200 changes, want a few", n)
	}
}

func TestInBurst(t *testing.T) {
	installed := time.Unix(1000, 0)
	before, after := installed.Add(-time.Microsecond), installed.Add(time.Microsecond)
	for _, tc := range []struct {
		name      string
		pending   int
		first     time.Time
		installed time.Time
		want      bool
	}{
		{name: "no change", want: false},
		{name: "no change after an install", installed: installed, want: false},
		{name: "one change after the install", pending: 1, first: after, installed: installed, want: false},
		{name: "one change as the file was installed", pending: 1, first: installed, installed: installed, want: false},
		{name: "one change before the install", pending: 1, first: before, installed: installed, want: true},
		{name: "one change, nothing installed", pending: 1, first: after, want: true},
		{name: "two changes after the install", pending: 2, first: after, installed: installed, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inBurst(tc.pending, tc.first, tc.installed); got != tc.want {
				t.Errorf("inBurst(%d, …) = %t, want %t", tc.pending, got, tc.want)
			}
		})
	}
}

// TestWatchCarriesPendingReloadOver checks that a reload that failed
// after its file was installed, in another processor (a -onetime, or the
// daemon before a SIGHUP), is run by the next although the file is
// current.
func TestWatchCarriesPendingReloadOver(t *testing.T) {
	dir := t.TempDir()
	up := filepath.Join(dir, "up")
	marker := filepath.Join(dir, "reloaded")
	r := newResource(t, dir, "a", `{{getv "/a/v"}}`, "/a")
	r.ReloadCmd = "test -e " + up + " && touch " + marker
	snap := kv.FromMap(1, map[string]string{"/a/v": "1"})
	src := SourceFunc(func(context.Context, []string) (*kv.Snapshot, error) { return snap, nil })
	first, _ := New(quietLogger(), src, newCounting(t, nil), []resource.Resource{r}, Options{})
	if err := first.Once(context.Background()); err == nil {
		t.Fatal("the first reload did not fail")
	}
	waitContent(t, r.Dest, "1")
	if err := os.WriteFile(up, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := New(quietLogger(), nil, newCounting(t, nil), []resource.Resource{r}, Options{})
	deliver := startWatch(t, p, DaemonOptions{})
	deliver(snap, nil)
	waitExists(t, marker, "the pending reload was not run")
}

func TestWatchReadyAfterEveryFirstAttempt(t *testing.T) {
	dir := t.TempDir()
	good := newResource(t, dir, "good", `{{getv "/a/v"}}`, "/a")
	failing := newResource(t, dir, "failing", `{{getv "/a/missing"}}`, "/a")
	p, _ := New(quietLogger(), nil, newCounting(t, nil), []resource.Resource{good, failing}, Options{})
	ready := make(chan struct{})
	var calls atomic.Int32
	deliver := startWatch(t, p, DaemonOptions{Ready: func() {
		if calls.Add(1) == 1 {
			close(ready)
		}
	}})
	select {
	case <-ready:
		t.Fatal("ready before any snapshot")
	case <-time.After(50 * time.Millisecond):
	}
	deliver(kv.FromMap(1, map[string]string{"/a/v": "1"}), nil)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("not ready although every resource was tried (one failing)")
	}
	if b, err := os.ReadFile(good.Dest); err != nil || string(b) != "1" {
		t.Errorf("ready before the good resource was written: %q, %v", b, err)
	}
	deliver(kv.FromMap(2, map[string]string{"/a/v": "2"}), []string{"/a/v"})
	waitContent(t, good.Dest, "2")
	if n := calls.Load(); n != 1 {
		t.Errorf("Ready called %d times, want once", n)
	}
}
