package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"github.com/etcdconfd/confd/pkg/kv"
)

// Defaults of MirrorOptions.
const (
	DefaultStaleTimeout = 30 * time.Second
	DefaultMinBackoff   = 200 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
)

// MirrorOptions tune a Mirror. Zero fields take the defaults.
type MirrorOptions struct {
	// PageSize is the number of keys per request when listing.
	PageSize int
	// RequestTimeout bounds one listing of every prefix.
	RequestTimeout time.Duration
	// StaleTimeout is how long a watch may stay silent before it is taken
	// for dead and set up again. After a third of it without news the
	// mirror asks etcd for a progress notification, so a healthy but idle
	// watch is never silent that long.
	StaleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential delay
	// between attempts while etcd is unavailable.
	MinBackoff, MaxBackoff time.Duration
	// Observer, when set, is told how the mirror is doing.
	Observer MirrorObserver
}

// MirrorObserver is told how a Mirror is doing, from the goroutine of Run;
// its methods must return quickly.
type MirrorObserver interface {
	// State reports that etcd became available (up) or unavailable, with
	// the error that made it so; the first call comes with the first
	// listing or failure.
	State(up bool, err error)
	// Revision reports the revision of every new snapshot.
	Revision(rev int64)
	// Reconnected reports a watch set up again after it failed.
	Reconnected()
	// Compacted reports a re-listing because etcd compacted the revision
	// the watch needed.
	Compacted()
	// Failed reports every failed attempt to list or watch, the silent
	// watch included.
	Failed(err error)
}

// nopMirrorObserver is the MirrorObserver of a Mirror without one.
type nopMirrorObserver struct{}

func (nopMirrorObserver) State(bool, error) {}
func (nopMirrorObserver) Revision(int64)    {}
func (nopMirrorObserver) Reconnected()      {}
func (nopMirrorObserver) Compacted()        {}
func (nopMirrorObserver) Failed(error)      {}

func (o MirrorOptions) withDefaults() MirrorOptions {
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.StaleTimeout <= 0 {
		o.StaleTimeout = DefaultStaleTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Observer == nil {
		o.Observer = nopMirrorObserver{}
	}
	return o
}

// Mirror keeps a local, current copy of the keys at or below a set of
// prefixes: it lists them at one revision R, then watches from R+1 and
// applies every event, so that each change costs what the change is and
// never a new read of the prefixes. It re-lists only when etcd has compacted
// the revision it needs.
type Mirror struct {
	cli  *clientv3.Client
	log  *logrus.Logger
	opts MirrorOptions
}

// NewMirror returns a mirror that reads through cli.
func NewMirror(cli *clientv3.Client, log *logrus.Logger, opts MirrorOptions) *Mirror {
	return &Mirror{cli: cli, log: log, opts: opts.withDefaults()}
}

// errStale reports a watch that stopped delivering anything, not even
// answers to progress requests.
var errStale = errors.New("watch went silent")

// errWatchClosed reports a watch channel closed by the client.
var errWatchClosed = errors.New("watch closed")

// Run mirrors every key at or below prefixes until ctx ends, then returns
// nil. It calls fn with every new snapshot, in revision order, from Run's
// goroutine: first with a full listing and changed == nil (everything may
// have changed; the same after a re-list), then once per batch of watch
// events with the keys that changed. A snapshot holds whole revisions only.
// fn must return quickly.
//
// While etcd is unreachable, has no leader or refuses the client, Run keeps
// trying with a jittered exponential backoff and logs once when it becomes
// unavailable and once when it is back. It never gives up.
func (m *Mirror) Run(ctx context.Context, prefixes []string, fn func(snap *kv.Snapshot, changed []string)) error {
	spans := prefixSpans(prefixes)
	if len(spans) == 0 {
		return errors.New("mirror etcd: no prefixes")
	}
	obs := m.opts.Observer
	st := &mirrorState{log: m.log, obs: obs}
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     m.opts.MinBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         m.opts.MaxBackoff,
	}
	bo.Reset()
	var snap *kv.Snapshot
	for ctx.Err() == nil {
		if snap == nil {
			lctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
			s, err := ReadPrefixes(lctx, m.cli, prefixes, m.opts.PageSize)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					st.unavailable(err)
					sleep(ctx, bo.NextBackOff())
				}
				continue
			}
			snap = s
			st.available(snap.Revision())
			m.log.WithFields(logrus.Fields{"revision": snap.Revision(), "keys": snap.Len()}).Debug("listed keys")
			obs.Revision(snap.Revision())
			fn(snap, nil)
		}
		err := m.watch(ctx, spans, &snap, fn, st, bo)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, rpctypes.ErrCompacted):
			// The events after our revision are gone: list again. Jumping
			// to the compact revision could miss deletes.
			m.log.WithField("revision", snap.Revision()).Warn("watch revision compacted, listing again")
			obs.Compacted()
			snap = nil
		default:
			obs.Reconnected()
			st.unavailable(err)
			sleep(ctx, bo.NextBackOff())
		}
	}
	return nil
}

// watch applies the events after snap's revision until the watch fails or
// ctx ends.
func (m *Mirror) watch(ctx context.Context, spans []span, snap **kv.Snapshot, fn func(*kv.Snapshot, []string),
	st *mirrorState, bo *backoff.ExponentialBackOff) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	key, opts := watchRange(spans)
	// The watch starts at the snapshot's own revision, not the one after:
	// etcd answers a progress request only once its revision has reached
	// the watch's start, so a watch from R+1 on an idle etcd at R would
	// look dead. Events at R or before are in the snapshot and skipped.
	from := (*snap).Revision()
	opts = append(opts, clientv3.WithRev(from), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	// Watch itself blocks until the stream to etcd is set up, which a
	// partitioned network never lets happen: start it aside, so that the
	// silence check below covers it too.
	started := make(chan clientv3.WatchChan, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		started <- m.cli.Watch(wctx, key, opts...)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	var wch clientv3.WatchChan
	states := m.connStates(wctx, &wg)

	ask := m.opts.StaleTimeout / 3
	tick := time.NewTicker(ask / 2)
	defer tick.Stop()
	last, asked := time.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wch = <-started:
		case resp, ok := <-wch:
			if !ok {
				return errWatchClosed
			}
			last = time.Now()
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watch from revision %d: %w", from, err)
			}
			st.available((*snap).Revision())
			bo.Reset()
			if len(resp.Events) == 0 {
				continue
			}
			changes, changed := filterEvents(spans, (*snap).Revision(), resp.Events)
			if len(changes) == 0 {
				continue
			}
			*snap = (*snap).Apply(resp.Events[len(resp.Events)-1].Kv.ModRevision, changes)
			st.obs.Revision((*snap).Revision())
			fn(*snap, changed)
		case state := <-states:
			// The client would set the watch up again by itself once it
			// reconnects, but a lost connection would show only as
			// silence until the stale timeout, and a watch resumed by the
			// client may stay silent: give the watch up at once, so that
			// etcd is reported unavailable and the watch is set up
			// again, from the same revision, once etcd answers.
			if state == connectivity.TransientFailure {
				return errNoConnection
			}
		case now := <-tick.C:
			silent := now.Sub(last)
			if silent >= m.opts.StaleTimeout {
				return fmt.Errorf("%w for %s", errStale, silent.Round(time.Second))
			}
			if silent >= ask && now.Sub(asked) >= ask {
				asked = now
				m.requestProgress(wctx, ask)
			}
		}
	}
}

// requestProgress asks etcd for a progress notification on the watch,
// waiting at most timeout.
func (m *Mirror) requestProgress(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := m.cli.RequestProgress(ctx); err != nil {
		m.log.WithError(err).Debug("request watch progress")
	}
}

// errNoConnection reports that the client has no connection to any etcd
// endpoint and is trying to make one.
var errNoConnection = errors.New("no connection to etcd")

// connStates reports the states of the client's connection to etcd as they
// change, until ctx ends, from a goroutine it adds to wg. Only the latest
// state waits to be received: a reader that falls behind misses the
// states in between, not the last one.
func (m *Mirror) connStates(ctx context.Context, wg *sync.WaitGroup) <-chan connectivity.State {
	out := make(chan connectivity.State, 1)
	conn := m.cli.ActiveConnection()
	if conn == nil {
		return out
	}
	// A connection that has failed already when the watch starts is
	// reported too.
	state := conn.GetState()
	if state == connectivity.TransientFailure {
		out <- state
	}
	wg.Go(func() {
		for conn.WaitForStateChange(ctx, state) {
			state = conn.GetState()
			select {
			case <-out:
			default:
			}
			out <- state
		}
	})
	return out
}

// watchRange returns the key and options of one watch that covers every
// span; events outside the spans are filtered out by filterEvents.
func watchRange(spans []span) (string, []clientv3.OpOption) {
	if spans[0].key == "\x00" && spans[0].end == "\x00" {
		return "\x00", []clientv3.OpOption{clientv3.WithFromKey()}
	}
	end := ""
	for _, s := range spans {
		e := s.end
		if e == "" {
			e = s.key + "\x00"
		}
		if e > end {
			end = e
		}
	}
	return spans[0].key, []clientv3.OpOption{clientv3.WithRange(end)}
}

// inSpans reports whether key is read by one of spans.
func inSpans(spans []span, key string) bool {
	for _, s := range spans {
		switch {
		case s.key == "\x00" && s.end == "\x00":
			return true
		case s.end == "":
			if key == s.key {
				return true
			}
		case key >= s.key && key < s.end:
			return true
		}
	}
	return false
}

// filterEvents turns the events after revision rev inside spans into
// snapshot changes and the list of changed keys.
func filterEvents(spans []span, rev int64, events []*clientv3.Event) ([]kv.Change, []string) {
	changes := make([]kv.Change, 0, len(events))
	changed := make([]string, 0, len(events))
	for _, ev := range events {
		k := string(ev.Kv.Key)
		if ev.Kv.ModRevision <= rev || !inSpans(spans, k) {
			continue
		}
		c := kv.Change{Key: k}
		if ev.Type == mvccpb.DELETE {
			c.Delete = true
		} else {
			c.Value = string(ev.Kv.Value)
		}
		changes = append(changes, c)
		changed = append(changed, k)
	}
	return changes, changed
}

// mirrorState logs the changes between available and unavailable once
// each, not once per attempt, and tells the observer.
type mirrorState struct {
	log   *logrus.Logger
	obs   MirrorObserver
	known bool // whether obs has been told a state yet
	down  bool
}

func (s *mirrorState) unavailable(err error) {
	s.obs.Failed(err)
	if s.down {
		s.log.WithError(err).Debug("etcd still unavailable")
		return
	}
	s.down, s.known = true, true
	s.log.WithError(err).Warn("etcd unavailable, keeping the last good files")
	s.obs.State(false, err)
}

func (s *mirrorState) available(rev int64) {
	if !s.known {
		s.known = true
		s.obs.State(true, nil)
	}
	if !s.down {
		return
	}
	s.down = false
	s.log.WithField("revision", rev).Info("etcd back")
	s.obs.State(true, nil)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
