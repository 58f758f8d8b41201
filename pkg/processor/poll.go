package processor

import (
	"context"
	"errors"
	"time"

	"github.com/etcdconfd/confd/pkg/kv"
)

// Poller is a Source that can also tell cheaply whether anything changed.
type Poller interface {
	Source
	// Changed reports whether any key at or below roots differs from snap,
	// without reading the keys.
	Changed(ctx context.Context, roots []string, snap *kv.Snapshot) (bool, error)
}

// Poll runs the interval mode: every opts.Interval it asks the poller
// whether anything under the resources' keys changed since the snapshot it
// rendered, reads the keys again only when something did, and renders the
// resources from the new snapshot. Resources that failed are tried again on
// every tick. opts.Ready is called after the first tick that read the keys.
// Poll returns nil when ctx ends.
func (p *Processor) Poll(ctx context.Context, src Poller, opts DaemonOptions) error {
	opts = opts.withDefaults()
	if opts.Interval <= 0 {
		return errors.New("poll: interval must be positive")
	}
	if len(p.units) == 0 {
		return p.idle(ctx, opts, "poll")
	}
	syncCtx, stopSync := graceContext(ctx, opts.Grace)
	defer stopSync()
	roots := p.roots()
	failed := make([]bool, len(p.units))
	var snap *kv.Snapshot
	var unavailable string
	ready := p.synced(opts)

	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		fresh, err := p.poll(ctx, src, roots, snap, max(opts.Interval, minProbeWait))
		switch {
		case err != nil && ctx.Err() == nil:
			if err.Error() != unavailable {
				p.log.WithError(err).Warn("backend unavailable, keeping the last good files")
				unavailable = err.Error()
			}
		case err == nil && unavailable != "":
			p.log.Info("backend back")
			unavailable = ""
		}
		if fresh != nil {
			snap = fresh
		}
		for i, u := range p.units {
			if snap != nil && (fresh != nil || failed[i]) {
				failed[i] = p.step(syncCtx, u, snap, &u.state) != nil
			}
		}
		if snap != nil && ready != nil {
			ready()
			ready = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// minProbeWait is the least time a tick waits for the answer to its probe.
const minProbeWait = time.Second

// poll returns a new snapshot when the keys changed since snap (or there is
// none yet), and nil when nothing changed.
//
// The probe is small, so one that has no answer after probeWait (a tick,
// at least minProbeWait) means the backend is not answering: the etcd
// client waits for a connection rather than failing while every endpoint
// is down. poll gives up then, so that the outage is logged within a tick
// or two rather than when the request timeout ends, or not at all when
// the outage is shorter than that timeout.
func (p *Processor) poll(ctx context.Context, src Poller, roots []string, snap *kv.Snapshot, probeWait time.Duration) (*kv.Snapshot, error) {
	if snap != nil {
		pctx, cancel := context.WithTimeout(ctx, probeWait)
		changed, err := src.Changed(pctx, roots, snap)
		cancel()
		if err != nil || !changed {
			return nil, err
		}
	}
	return src.Snapshot(ctx, roots)
}
