package etcd

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/pkg/kv"
)

// Reader reads snapshots of prefixes and tells cheaply whether they
// changed; the interval mode polls through it.
type Reader struct {
	Client         *clientv3.Client
	PageSize       int
	RequestTimeout time.Duration
}

// Snapshot reads every key at or below roots at one revision (ReadPrefixes),
// bounded by the request timeout.
func (r *Reader) Snapshot(ctx context.Context, roots []string) (*kv.Snapshot, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	return ReadPrefixes(ctx, r.Client, roots, r.PageSize)
}

func (r *Reader) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.RequestTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, r.RequestTimeout)
}

// Changed reports whether any key at or below roots differs from snap, which
// must have been read by ReadPrefixes for the same roots. It sends one
// read-only transaction that counts the keys and asks for at most one key
// per span modified after snap's revision: the answer is a few hundred bytes
// whatever the number of keys. A put or create shows as a modified key, a
// delete as a smaller count.
func (r *Reader) Changed(ctx context.Context, roots []string, snap *kv.Snapshot) (bool, error) {
	spans := prefixSpans(roots)
	ops := make([]clientv3.Op, 0, 2*len(spans))
	for _, s := range spans {
		key, opts := spanOpts(s)
		ops = append(ops,
			clientv3.OpGet(key, append(opts, clientv3.WithCountOnly())...),
			clientv3.OpGet(key, append(opts, clientv3.WithMinModRev(snap.Revision()+1),
				clientv3.WithKeysOnly(), clientv3.WithLimit(1))...))
	}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	resp, err := r.Client.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("probe %d prefixes in etcd %s: %w", len(spans), redacted(r.Client.Endpoints()), err)
	}
	var count int64
	for i, op := range resp.Responses {
		rr := op.GetResponseRange()
		if i%2 == 0 {
			count += rr.Count
		} else if len(rr.Kvs) > 0 {
			return true, nil
		}
	}
	return count != int64(snap.Len()), nil
}

// spanOpts returns the key and range options that read span s.
func spanOpts(s span) (string, []clientv3.OpOption) {
	switch {
	case s.key == "\x00" && s.end == "\x00":
		return s.key, []clientv3.OpOption{clientv3.WithFromKey()}
	case s.end == "":
		return s.key, nil
	default:
		return s.key, []clientv3.OpOption{clientv3.WithRange(s.end)}
	}
}
