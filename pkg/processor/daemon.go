package processor

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"

	"github.com/etcdconfd/confd/pkg/kv"
)

// Watcher keeps a snapshot of the keys at or below roots current and calls
// fn with every new one, in revision order, until ctx ends: first with
// changed == nil (everything may have changed), then with the keys that
// changed. *etcd.Mirror is one.
type Watcher interface {
	Run(ctx context.Context, roots []string, fn func(snap *kv.Snapshot, changed []string)) error
}

// DaemonOptions tune the long-running modes.
type DaemonOptions struct {
	// Interval, in watch mode, re-renders every resource from the latest
	// snapshot this often, as a safety net against a dest changed behind
	// confd's back; 0 never. In interval mode it is the polling period.
	Interval time.Duration
	// WaitMin and WaitMax set the quiescence of resources that have none of
	// their own: render once no change came for WaitMin, but no later than
	// WaitMax after the first pending change. Zero WaitMin renders at once.
	WaitMin, WaitMax time.Duration
	// MinRetry and MaxRetry bound the jittered exponential delay before a
	// failed resource is tried again without a new change.
	MinRetry, MaxRetry time.Duration
	// Grace is how long an in-flight sync may go on once ctx ends, so that
	// a check that is running can finish and its file be installed.
	Grace time.Duration
	// Ready, when set, is called once, as soon as every resource has had
	// its first render attempt, whether it succeeded or failed: in watch
	// mode when each resource's first render from the first snapshot has
	// finished, in interval mode after the first tick that read the keys.
	// With no resources it is called at once. It must not block.
	Ready func()
}

func (o DaemonOptions) withDefaults() DaemonOptions {
	if o.MinRetry <= 0 {
		o.MinRetry = time.Second
	}
	if o.MaxRetry < o.MinRetry {
		o.MaxRetry = max(time.Minute, o.MinRetry)
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	return o
}

// Watch runs the watch mode: every change the watcher reports renders the
// resources whose keys it touches, each resource on its own, with at most
// one render in flight and one pending. A single change renders at once; a
// burst collapses into few renders, the last of which sees the latest
// snapshot. Watch returns when ctx ends and every render has finished, or
// when the watcher fails.
func (p *Processor) Watch(ctx context.Context, w Watcher, opts DaemonOptions) error {
	opts = opts.withDefaults()
	if len(p.units) == 0 {
		return p.idle(ctx, opts, "watch")
	}
	stepped := readyAfter(len(p.units), p.synced(opts))
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	syncCtx, stopSync := graceContext(runCtx, opts.Grace)
	defer stopSync()

	var latest atomic.Pointer[kv.Snapshot]
	workers := make([]*worker, len(p.units))
	var wg sync.WaitGroup
	for i, u := range p.units {
		workers[i] = newWorker(p, u, opts, latest.Load)
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[i].loop(runCtx, syncCtx, opts.Interval, stepped)
		}()
	}
	err := w.Run(runCtx, p.roots(), func(snap *kv.Snapshot, changed []string) {
		latest.Store(snap)
		if changed != nil {
			p.log.WithFields(logrus.Fields{"keys": len(changed), "revision": snap.Revision()}).Info("keys changed")
		}
		for _, wk := range workers {
			if changed == nil || wk.affected(changed) {
				wk.notify()
			}
		}
	})
	cancel()
	wg.Wait()
	return err
}

// readyAfter returns a function that calls ready on its n-th call. Each
// worker calls it once, after its first render attempt.
func readyAfter(n int, ready func()) func() {
	var left atomic.Int64
	left.Store(int64(n))
	return func() {
		if left.Add(-1) == 0 {
			ready()
		}
	}
}

// synced returns what a mode calls once every resource has had its first
// render attempt: it logs so and tells opts.Ready.
func (p *Processor) synced(opts DaemonOptions) func() {
	return func() {
		p.log.WithField("resources", len(p.units)).Info("initial sync done")
		opts.ready()
	}
}

// idle runs a mode without resources: ready at once, then nothing to do
// until ctx ends.
func (p *Processor) idle(ctx context.Context, opts DaemonOptions, mode string) error {
	p.log.Warn("no template resources to " + mode)
	opts.ready()
	<-ctx.Done()
	return nil
}

// ready calls Ready when it is set.
func (o DaemonOptions) ready() {
	if o.Ready != nil {
		o.Ready()
	}
}

// graceContext returns a context that ends grace after ctx ends.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-gctx.Done():
		}
	})
	return gctx, func() {
		stop()
		cancel()
	}
}

// worker renders one resource whenever it is notified.
type worker struct {
	p                *Processor
	u                *unit
	latest           func() *kv.Snapshot
	waitMin, waitMax time.Duration
	minRetry         time.Duration
	maxRetry         time.Duration
	kick             chan struct{}

	mu          sync.Mutex
	first, last time.Time // first and last change not rendered yet
	pending     int       // changes not rendered yet
}

func newWorker(p *Processor, u *unit, opts DaemonOptions, latest func() *kv.Snapshot) *worker {
	w := &worker{
		p: p, u: u, latest: latest,
		waitMin: opts.WaitMin, waitMax: opts.WaitMax,
		minRetry: opts.MinRetry, maxRetry: opts.MaxRetry,
		kick: make(chan struct{}, 1),
	}
	if u.res.WaitMin > 0 {
		w.waitMin, w.waitMax = u.res.WaitMin, u.res.WaitMax
	}
	if w.waitMin > 0 && w.waitMax < w.waitMin {
		w.waitMax = w.waitMin
	}
	return w
}

// affected reports whether a changed key is at or below one of the
// resource's roots.
func (w *worker) affected(changed []string) bool {
	for _, k := range changed {
		for _, r := range w.u.roots {
			if r == "/" || k == r || strings.HasPrefix(k, r+"/") {
				return true
			}
		}
	}
	return false
}

// notify records a change and wakes the worker without blocking.
func (w *worker) notify() {
	now := time.Now()
	w.mu.Lock()
	if w.first.IsZero() {
		w.first = now
	}
	w.last = now
	w.pending++
	w.mu.Unlock()
	w.p.opts.Observer.Pending(w.u.res.Name, true)
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// loop renders the resource whenever it is due until ctx ends; it calls
// stepped once, after its first render attempt.
func (w *worker) loop(ctx, syncCtx context.Context, interval time.Duration, stepped func()) {
	bo := &backoff.ExponentialBackOff{
		InitialInterval: w.minRetry, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: w.maxRetry,
	}
	bo.Reset()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	burst := false
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-retry.C:
		case <-tick:
		}
		waitMin, waitMax := w.waitMin, w.waitMax
		if waitMin == 0 && burst {
			waitMin, waitMax = burstSettle, burstMax
		}
		if !w.quiesce(ctx, waitMin, waitMax) {
			return
		}
		snap := w.latest()
		if snap == nil {
			continue
		}
		err := w.p.step(syncCtx, w.u, snap, &w.u.state)
		if stepped != nil {
			stepped()
			stepped = nil
		}
		w.mu.Lock()
		burst = inBurst(w.pending, w.first, w.u.state.installed)
		w.mu.Unlock()
		if err != nil {
			retry.Reset(bo.NextBackOff())
			continue
		}
		bo.Reset()
		retry.Stop()
	}
}

// inBurst reports whether the changes that came while a render ran, the
// first of them at first, mean a burst: the next render waits for them to
// settle a little. One change alone that came once the new file was in
// place (installed, zero when the render replaced none), such as the next
// of a series made one at a time by a writer that waits for the file,
// renders at once. installed is the moment just before the file was
// replaced (see filesync.Result): a writer that saw the new file made its
// change after it, however late the render finished.
func inBurst(pending int, first, installed time.Time) bool {
	if pending == 0 {
		return false
	}
	single := pending == 1 && !installed.IsZero() && !first.Before(installed)
	return !single
}

// In a burst (changes arriving while a render runs) a resource without a
// wait of its own renders once no change came for burstSettle, or
// burstMax after the first pending change. A change that finds the
// resource idle, or is the only one and came after the new file was
// installed, renders at once.
const (
	burstSettle = 10 * time.Millisecond
	burstMax    = 100 * time.Millisecond
)

// quiesce waits until the resource's changes have settled: no change for
// waitMin, or waitMax after the first pending one (see
// DaemonOptions.WaitMin). It then marks them taken; false when ctx ended.
func (w *worker) quiesce(ctx context.Context, waitMin, waitMax time.Duration) bool {
	for {
		w.mu.Lock()
		first, last := w.first, w.last
		due := last.Add(waitMin)
		if limit := first.Add(waitMax); waitMin > 0 && limit.Before(due) {
			due = limit
		}
		if waitMin == 0 || first.IsZero() || !time.Now().Before(due) {
			w.first, w.last, w.pending = time.Time{}, time.Time{}, 0
			w.mu.Unlock()
			return true
		}
		w.mu.Unlock()
		t := time.NewTimer(time.Until(due))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-w.kick:
		case <-t.C:
		}
		t.Stop()
	}
}
