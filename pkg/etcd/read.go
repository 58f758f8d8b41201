package etcd

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/etcdconfd/confd/pkg/kv"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// DefaultPageSize is how many keys one request of ReadPrefixes asks for
	// when its pageSize is not positive.
	DefaultPageSize = 10000
	// readAttempts bounds how often ReadPrefixes starts over because its
	// revision was compacted while it read.
	readAttempts = 3
)

// span is the keys [key, end) of one read; end == "" reads key alone.
type span struct {
	key, end string
}

func (s span) String() string {
	switch {
	case s.end == "":
		return fmt.Sprintf("key %q", s.key)
	case s.key == "\x00" && s.end == "\x00":
		return "all keys"
	default:
		return fmt.Sprintf("keys [%q, %q)", s.key, s.end)
	}
}

// ReadPrefixes reads every key at or below each prefix at one revision and
// returns them as a snapshot at that revision.
//
// Prefixes are normalised like kv.NormalizeKey and matched on key
// boundaries: "/app" reads "/app" and "/app/..." but not "/appx". A prefix
// below another one is not read twice, and "/" reads every key. The first
// request fixes the revision; every later request, for other prefixes and
// further pages of pageSize keys, reads at that revision. When that
// revision is compacted before the read ends, the read starts over at the
// current revision, a few times at most.
//
// The key of a prefix itself is read with a request of its own. When the
// user may read below a prefix but not the prefix key itself, as a role
// granted on the prefix "/app/" allows, that key counts as absent.
//
// ReadPrefixes returns when ctx ends; callers bound it with their request
// timeout. Errors name the endpoints when c is a *clientv3.Client.
func ReadPrefixes(ctx context.Context, c clientv3.KV, prefixes []string, pageSize int) (*kv.Snapshot, error) {
	spans := prefixSpans(prefixes)
	if len(spans) == 0 {
		return nil, errors.New("read from etcd: no prefixes")
	}
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	for attempt := 1; ; attempt++ {
		snap, err := readSpans(ctx, c, spans, int64(pageSize))
		if err == nil || attempt == readAttempts || !errors.Is(err, rpctypes.ErrCompacted) {
			return snap, err
		}
	}
}

// readSpans reads all spans at the revision of its first answer.
func readSpans(ctx context.Context, c clientv3.KV, spans []span, pageSize int64) (*kv.Snapshot, error) {
	b := kv.NewBuilder()
	var rev int64
	for _, s := range spans {
		from := s.key
		for {
			opts := make([]clientv3.OpOption, 0, 3)
			if s.end != "" {
				opts = append(opts, clientv3.WithRange(s.end), clientv3.WithLimit(pageSize))
			}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			resp, err := c.Get(ctx, from, opts...)
			if err != nil {
				if s.end == "" && errors.Is(err, rpctypes.ErrPermissionDenied) {
					break
				}
				return nil, readError(c, s, rev, err)
			}
			if rev == 0 {
				rev = resp.Header.Revision
			}
			for _, p := range resp.Kvs {
				b.Put(string(p.Key), string(p.Value))
			}
			if s.end == "" || !resp.More || len(resp.Kvs) == 0 {
				break
			}
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return b.Build(rev), nil
}

// endpointer is what a *clientv3.Client offers to name its endpoints.
type endpointer interface {
	Endpoints() []string
}

func readError(c clientv3.KV, s span, rev int64, err error) error {
	at := "the current revision"
	if rev != 0 {
		at = fmt.Sprintf("revision %d", rev)
	}
	from := "etcd"
	if e, ok := c.(endpointer); ok {
		from = "etcd " + redacted(e.Endpoints())
	}
	return fmt.Errorf("read %s from %s at %s: %w", s, from, at, err)
}

// prefixSpans turns prefixes into the spans to read: for each prefix not
// at or below another one, the prefix key itself and the keys below
// prefix+"/".
func prefixSpans(prefixes []string) []span {
	roots := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		r := kv.NormalizeKey(p)
		if r == "/" {
			return []span{{key: "\x00", end: "\x00"}}
		}
		roots = append(roots, r)
	}
	// Shorter roots first, so a root's ancestors are kept before it is
	// looked at.
	sort.Slice(roots, func(i, j int) bool {
		if len(roots[i]) != len(roots[j]) {
			return len(roots[i]) < len(roots[j])
		}
		return roots[i] < roots[j]
	})
	kept := make(map[string]bool, len(roots))
	spans := make([]span, 0, 2*len(roots))
	for _, r := range roots {
		if covered(kept, r) {
			continue
		}
		kept[r] = true
		// "0" is the byte after "/", so [r+"/", r+"0") is everything
		// below r.
		spans = append(spans, span{key: r}, span{key: r + "/", end: r + "0"})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].key < spans[j].key })
	return spans
}

// covered reports whether root or one of its ancestors is in kept.
func covered(kept map[string]bool, root string) bool {
	for r := root; r != "/"; r = path.Dir(r) {
		if kept[r] {
			return true
		}
	}
	return false
}
