package etcd

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"unsafe"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcdconfd/confd/pkg/kv"
)

const (
	// DefaultPageSize is how many keys one request of ReadPrefixes asks an
	// etcd without range streams for when its pageSize is not positive.
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
// answer fixes the revision; every later request reads at that revision.
// The keys below a prefix are read with one range stream (etcd 3.7 and
// later), in which etcd sends chunks of bounded size without waiting for
// the client; an etcd without range streams is read with pages of pageSize
// keys instead. When the revision is compacted before the read ends, the
// read starts over at the current revision, a few times at most.
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
	r := &spanReader{c: c, b: kv.NewBuilder(), pageSize: pageSize, stream: true}
	for _, s := range spans {
		if err := r.read(ctx, s); err != nil {
			return nil, err
		}
	}
	return r.b.Build(r.rev), nil
}

// spanReader reads spans into one snapshot at one revision.
type spanReader struct {
	c        clientv3.KV
	b        *kv.Builder
	rev      int64 // 0 until the first answer
	pageSize int64
	// stream is false once etcd has said it has no range streams.
	stream bool
}

func (r *spanReader) read(ctx context.Context, s span) error {
	if s.end == "" {
		return r.readKey(ctx, s)
	}
	if r.stream {
		err := r.readStream(ctx, s)
		if status.Code(err) != codes.Unimplemented {
			return err
		}
		// An etcd without range streams (before 3.7): read page by page.
		r.stream = false
	}
	return r.readPages(ctx, s)
}

// readKey reads the single key of s. A key the user may not read counts
// as absent.
func (r *spanReader) readKey(ctx context.Context, s span) error {
	var opts []clientv3.OpOption
	if r.rev != 0 {
		opts = append(opts, clientv3.WithRev(r.rev))
	}
	resp, err := r.c.Get(ctx, s.key, opts...)
	if errors.Is(err, rpctypes.ErrPermissionDenied) {
		return nil
	}
	if err != nil {
		return readError(r.c, s, r.rev, err)
	}
	r.fix(resp.Header.Revision)
	putKVs(r.b, resp.Kvs)
	return nil
}

// readPages reads the keys of s page by page, pageSize keys at a time.
func (r *spanReader) readPages(ctx context.Context, s span) error {
	from := s.key
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(s.end), clientv3.WithLimit(r.pageSize)}
		if r.rev != 0 {
			opts = append(opts, clientv3.WithRev(r.rev))
		}
		resp, err := r.c.Get(ctx, from, opts...)
		if err != nil {
			return readError(r.c, s, r.rev, err)
		}
		r.fix(resp.Header.Revision)
		putKVs(r.b, resp.Kvs)
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// fix makes rev the revision of the read unless an earlier answer fixed
// one already.
func (r *spanReader) fix(rev int64) {
	if r.rev == 0 {
		r.rev = rev
	}
}

// putKVs adds the pairs the client decoded to b.
func putKVs(b *kv.Builder, kvs []*mvccpb.KeyValue) {
	for _, p := range kvs {
		b.Put(bytesString(p.Key), bytesString(p.Value))
	}
}

// bytesString returns b as a string that shares b's memory. The keys and
// values of a read are in slices that nothing else refers to and nothing
// changes: the client decodes each into a slice of its own, and
// chunk.decode copies an answer's into one block. The snapshot keeps them
// instead of copying them again. Callers must not change b afterwards.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
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
