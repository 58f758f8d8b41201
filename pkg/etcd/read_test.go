package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/etcdtest"
	"github.com/etcdconfd/confd/pkg/kv"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, c clientv3.KV, pairs map[string]string) int64 {
	t.Helper()
	var rev int64
	for k, v := range pairs {
		resp, err := c.Put(testContext(t, 10*time.Second), k, v)
		if err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		rev = max(rev, resp.Header.Revision)
	}
	return rev
}

// stateAt returns every key of etcd at revision rev, read with one request.
func stateAt(t *testing.T, c clientv3.KV, rev int64) map[string]string {
	t.Helper()
	resp, err := c.Get(testContext(t, 10*time.Second), "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatalf("get all at revision %d: %v", rev, err)
	}
	m := make(map[string]string, len(resp.Kvs))
	for _, p := range resp.Kvs {
		m[string(p.Key)] = string(p.Value)
	}
	return m
}

func snapshotMap(s *kv.Snapshot) map[string]string {
	m := map[string]string{}
	s.Ascend(func(p kv.KVPair) bool {
		m[p.Key] = p.Value
		return true
	})
	return m
}

// under keeps the keys of m at or below root.
func under(m map[string]string, root string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k == root || strings.HasPrefix(k, root+"/") {
			out[k] = v
		}
	}
	return out
}

// request is what one Get or range stream asked for.
type request struct {
	key, end string
	rev      int64
	limit    int64
	stream   bool
}

// recordingKV passes requests on to etcd, records them, and runs after
// (when set) once each Get has returned or the first chunk of each range
// stream has arrived. With noStream it answers range streams as an etcd
// before 3.7 does, with the gRPC status Unimplemented.
type recordingKV struct {
	clientv3.KV
	noStream bool
	mu       sync.Mutex
	requests []request
	after    func(n int)
}

func (r *recordingKV) record(key string, op clientv3.Op, stream bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, request{key: key, end: string(op.RangeBytes()), rev: op.Rev(), limit: op.Limit(), stream: stream})
	return len(r.requests)
}

func (r *recordingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	op := clientv3.OpGet(key, opts...)
	if op.IsSerializable() {
		return nil, errors.New("serializable read")
	}
	resp, err := r.KV.Get(ctx, key, opts...)
	n := r.record(key, op, false)
	if r.after != nil {
		r.after(n)
	}
	return resp, err
}

func (r *recordingKV) GetStream(ctx context.Context, key string, opts ...clientv3.OpOption) (clientv3.GetStreamChan, error) {
	op := clientv3.OpGet(key, opts...)
	if op.IsSerializable() {
		return nil, errors.New("serializable read")
	}
	if r.noStream {
		return nil, status.Error(codes.Unimplemented, "unknown method RangeStream for service etcdserverpb.KV")
	}
	in, err := r.KV.GetStream(ctx, key, opts...)
	n := r.record(key, op, true)
	if err != nil {
		return nil, err
	}
	out := make(chan clientv3.RangeStreamResponse)
	go func() {
		defer close(out)
		first := true
		for resp := range in {
			out <- resp
			if first && r.after != nil {
				r.after(n)
			}
			first = false
		}
	}()
	return out, nil
}

func (r *recordingKV) recorded() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

// checkFixedRevision checks that every request after the first read at
// revision rev.
func checkFixedRevision(t *testing.T, reqs []request, rev int64) {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatal("no requests")
	}
	if reqs[0].rev != 0 {
		t.Errorf("first request at revision %d, want the current one", reqs[0].rev)
	}
	for i, r := range reqs[1:] {
		if r.rev != rev {
			t.Errorf("request %d (%q) at revision %d, want %d", i+1, r.key, r.rev, rev)
		}
	}
}

// TestReadPrefixesPages reads from an etcd without range streams, which is
// read page by page.
func TestReadPrefixesPages(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	want := map[string]string{}
	for i := range 100 {
		want[fmt.Sprintf("/app/k%03d", i)] = fmt.Sprint(i)
	}
	put(t, c, want)
	rev := put(t, c, map[string]string{"/apps/outside": "x"})

	for _, tc := range []struct {
		pageSize   int
		rangeReads int
	}{
		{pageSize: 3, rangeReads: 34},
		{pageSize: 100, rangeReads: 1},
		{pageSize: 99, rangeReads: 2},
		{pageSize: 0, rangeReads: 1},
	} {
		t.Run(fmt.Sprintf("page%d", tc.pageSize), func(t *testing.T) {
			rec := &recordingKV{KV: c, noStream: true}
			snap, err := ReadPrefixes(testContext(t, 20*time.Second), rec, []string{"/app"}, tc.pageSize)
			if err != nil {
				t.Fatal(err)
			}
			if got := snapshotMap(snap); !reflect.DeepEqual(got, want) {
				t.Errorf("got %d keys, want %d: %v", len(got), len(want), got)
			}
			if snap.Revision() != rev {
				t.Errorf("revision = %d, want %d", snap.Revision(), rev)
			}
			reqs := rec.recorded()
			checkFixedRevision(t, reqs, rev)
			wantLimit := int64(tc.pageSize)
			if tc.pageSize <= 0 {
				wantLimit = DefaultPageSize
			}
			ranges := 0
			for _, r := range reqs {
				if r.end == "" {
					continue
				}
				ranges++
				if r.limit != wantLimit {
					t.Errorf("range request %q limit = %d, want %d", r.key, r.limit, wantLimit)
				}
			}
			if ranges != tc.rangeReads {
				t.Errorf("%d range requests, want %d", ranges, tc.rangeReads)
			}
		})
	}
}

func TestReadPrefixesSelection(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	data := map[string]string{
		"/app":       "root",
		"/app/a":     "1",
		"/app/b/c":   "2",
		"/app-1/z":   "dash",
		"/app.d":     "dot",
		"/app0":      "zero",
		"/appx":      "x",
		"/appx/y":    "y",
		"/ap":        "short",
		"/other/o":   "o",
		"noslash":    "n",
		"/app/b/c/d": "3",
	}
	rev := put(t, c, data)
	pick := func(keys ...string) map[string]string {
		m := map[string]string{}
		for _, k := range keys {
			m[k] = data[k]
		}
		return m
	}
	app := pick("/app", "/app/a", "/app/b/c", "/app/b/c/d")
	appSpans := []request{{key: "/app"}, {key: "/app/", end: "/app0"}}

	for _, tc := range []struct {
		name     string
		prefixes []string
		want     map[string]string
		requests []request // key and end of each request, in order
	}{
		{name: "prefix and its subtree", prefixes: []string{"/app"}, want: app, requests: appSpans},
		{name: "trailing slash", prefixes: []string{"/app/"}, want: app, requests: appSpans},
		{name: "no leading slash", prefixes: []string{"app"}, want: app, requests: appSpans},
		{name: "subtree only", prefixes: []string{"/app/b"}, want: pick("/app/b/c", "/app/b/c/d"),
			requests: []request{{key: "/app/b"}, {key: "/app/b/", end: "/app/b0"}}},
		{name: "single key", prefixes: []string{"/app/a"}, want: pick("/app/a"),
			requests: []request{{key: "/app/a"}, {key: "/app/a/", end: "/app/a0"}}},
		{name: "overlapping prefixes read once", prefixes: []string{"/app/b", "/app", "/app/b/c", "/app"}, want: app, requests: appSpans},
		{name: "sibling sorting between prefix and child", prefixes: []string{"/app/b", "/app-1", "/app"},
			want:     mergeMaps(app, pick("/app-1/z")),
			requests: []request{{key: "/app"}, {key: "/app-1"}, {key: "/app-1/", end: "/app-10"}, {key: "/app/", end: "/app0"}}},
		{name: "root reads everything", prefixes: []string{"/"}, want: data,
			requests: []request{{key: "\x00", end: "\x00"}}},
		{name: "root with others", prefixes: []string{"/app", "/", "/other"}, want: data,
			requests: []request{{key: "\x00", end: "\x00"}}},
		{name: "empty prefix is root", prefixes: []string{""}, want: data,
			requests: []request{{key: "\x00", end: "\x00"}}},
		{name: "missing prefix", prefixes: []string{"/missing"}, want: map[string]string{},
			requests: []request{{key: "/missing"}, {key: "/missing/", end: "/missing0"}}},
	} {
		for _, noStream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/noStream=%t", tc.name, noStream), func(t *testing.T) {
				rec := &recordingKV{KV: c, noStream: noStream}
				snap, err := ReadPrefixes(testContext(t, 20*time.Second), rec, tc.prefixes, 2)
				if err != nil {
					t.Fatal(err)
				}
				if got := snapshotMap(snap); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
				if snap.Revision() != rev {
					t.Errorf("revision = %d, want %d", snap.Revision(), rev)
				}
				reqs := rec.recorded()
				checkFixedRevision(t, reqs, rev)
				// Collapse pages: keep the first request of each span.
				var got []request
				for _, r := range reqs {
					if n := len(got); n > 0 && r.end != "" && got[n-1].end == r.end {
						continue
					}
					got = append(got, request{key: r.key, end: r.end})
				}
				if !reflect.DeepEqual(got, tc.requests) {
					t.Errorf("requests = %+q, want %+q", fmtRequests(got), fmtRequests(tc.requests))
				}
			})
		}
	}
}

func mergeMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestReadPrefixesFixedRevision changes keys between the pages or chunks of
// a read: the snapshot must be the state at the revision of the first
// answer.
func TestReadPrefixesFixedRevision(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	initial := map[string]string{"/app": "root", "/other/x": "x"}
	for i := range 30 {
		initial[fmt.Sprintf("/app/k%02d", i)] = "v0"
	}
	for _, noStream := range []bool{false, true} {
		t.Run(fmt.Sprintf("noStream=%t", noStream), func(t *testing.T) {
			// Start from the initial keys alone, whatever the run before
			// changed.
			if _, err := c.Delete(testContext(t, 10*time.Second), "\x00", clientv3.WithFromKey()); err != nil {
				t.Fatal(err)
			}
			rev := put(t, c, initial)
			checkChangesDuringRead(t, c, initial, rev, noStream)
		})
	}
}

// checkChangesDuringRead changes keys after the first page or chunk of
// /app/ and checks that the snapshot is the state at rev.
func checkChangesDuringRead(t *testing.T, c *clientv3.Client, initial map[string]string, rev int64, noStream bool) {
	t.Helper()
	rec := &recordingKV{KV: c, noStream: noStream}
	rec.after = func(n int) {
		if n != 2 { // after the first page or chunk of /app/
			return
		}
		ctx := testContext(t, 10*time.Second)
		ops := []clientv3.Op{
			clientv3.OpPut("/app", "changed"),
			clientv3.OpDelete("/app/k29"),
			clientv3.OpPut("/app/k15", "v1"),
			clientv3.OpPut("/app/k99", "new"),
			clientv3.OpPut("/other/x", "changed"),
		}
		for _, op := range ops {
			if _, err := c.Do(ctx, op); err != nil {
				t.Errorf("change during read: %v", err)
			}
		}
	}
	snap, err := ReadPrefixes(testContext(t, 20*time.Second), rec, []string{"/app", "/other"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision() != rev {
		t.Fatalf("revision = %d, want %d", snap.Revision(), rev)
	}
	checkFixedRevision(t, rec.recorded(), rev)
	if got, want := snapshotMap(snap), initial; !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot differs from the state at revision %d:\ngot  %v\nwant %v", rev, got, want)
	}
	if got, want := snapshotMap(snap), stateAt(t, c, rev); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot differs from a read at revision %d:\ngot  %v\nwant %v", rev, got, want)
	}
	// The changes did happen, so a read at the latest revision would differ.
	if now := stateAt(t, c, 0); reflect.DeepEqual(now, initial) {
		t.Fatalf("changes during the read were not applied")
	}
}

// TestReadPrefixesConcurrentWriter reads page by page while a writer keeps
// setting /app/a and /app/z to the same new value in one transaction: in a
// snapshot at one revision the two are always equal.
func TestReadPrefixesConcurrentWriter(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	data := map[string]string{"/app/a": "0", "/app/z": "0"}
	for i := range 50 {
		data[fmt.Sprintf("/app/m%02d", i)] = "filler"
	}
	put(t, c, data)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	writes := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		n := 0
		defer func() { writes <- n }()
		for n < 5000 && ctx.Err() == nil {
			v := fmt.Sprint(n + 1)
			_, err := c.Txn(ctx).Then(clientv3.OpPut("/app/a", v), clientv3.OpPut("/app/z", v)).Commit()
			if err != nil {
				return
			}
			n++
		}
	}()

	rec := &recordingKV{KV: c, noStream: true}
	// Let the writer get going before the first page.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(testContext(t, 5*time.Second), "/app/a")
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Kvs[0].Value) != "0" || time.Now().After(deadline) {
			break
		}
	}
	snap, err := ReadPrefixes(testContext(t, 20*time.Second), rec, []string{"/app"}, 1)
	cancel()
	wg.Wait()
	n := <-writes
	if err != nil {
		t.Fatal(err)
	}
	a, _ := snap.Lookup("/app/a")
	z, _ := snap.Lookup("/app/z")
	if a != z {
		t.Errorf("/app/a = %s but /app/z = %s in one snapshot", a, z)
	}
	if snap.Len() != len(data) {
		t.Errorf("snapshot has %d keys, want %d", snap.Len(), len(data))
	}
	checkFixedRevision(t, rec.recorded(), snap.Revision())
	if got, want := snapshotMap(snap), under(stateAt(t, c, snap.Revision()), "/app"); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot differs from a read at revision %d", snap.Revision())
	}
	// Without writes after the first page the test would prove nothing.
	if latest := stateAt(t, c, 0)["/app/a"]; latest == a {
		t.Errorf("writer made %d writes, none after the read began", n)
	}
}

// putAndCompactAfter makes rec, after its n-th request, put key = "added"
// and compact etcd at the revision of that put, which it returns.
func putAndCompactAfter(t *testing.T, c *clientv3.Client, rec *recordingKV, n int, key string) *int64 {
	t.Helper()
	compacted := new(int64)
	rec.after = func(i int) {
		if i != n {
			return
		}
		ctx := testContext(t, 10*time.Second)
		resp, err := c.Put(ctx, key, "added")
		if err != nil {
			t.Errorf("put: %v", err)
			return
		}
		*compacted = resp.Header.Revision
		if _, err := c.Compact(ctx, *compacted, clientv3.WithCompactPhysical()); err != nil {
			t.Errorf("compact: %v", err)
		}
	}
	return compacted
}

// TestReadPrefixesStartsOverAfterCompaction compacts the revision of a read
// between its pages: the read starts over at the new revision.
func TestReadPrefixesStartsOverAfterCompaction(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	data := map[string]string{}
	for i := range 10 {
		data[fmt.Sprintf("/app/k%d", i)] = "v"
	}
	first := put(t, c, data)

	rec := &recordingKV{KV: c, noStream: true}
	compacted := putAndCompactAfter(t, c, rec, 2, "/app/late")
	snap, err := ReadPrefixes(testContext(t, 20*time.Second), rec, []string{"/app"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision() != *compacted || *compacted <= first {
		t.Errorf("revision = %d, want %d (after the first read at %d)", snap.Revision(), *compacted, first)
	}
	want := mergeMaps(data, map[string]string{"/app/late": "added"})
	if got := snapshotMap(snap); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// The first attempt read at the old revision, the second at the new.
	var revs []int64
	for _, r := range rec.recorded() {
		if len(revs) == 0 || revs[len(revs)-1] != r.rev {
			revs = append(revs, r.rev)
		}
	}
	if wantRevs := []int64{0, first, 0, *compacted}; !reflect.DeepEqual(revs, wantRevs) {
		t.Errorf("request revisions = %v, want %v", revs, wantRevs)
	}
}

func TestReadPrefixesUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{dead}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const timeout = 500 * time.Millisecond
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = ReadPrefixes(ctx, c, []string{"/app"}, 0)
	took := time.Since(start)
	if err == nil {
		t.Fatal("read from a dead endpoint succeeded")
	}
	if took > timeout+2*time.Second {
		t.Errorf("read took %v with a timeout of %v", took, timeout)
	}
	if !strings.Contains(err.Error(), dead) {
		t.Errorf("error %q does not name the endpoint %s", err, dead)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q is not a deadline", err)
	}
}

func TestReadPrefixesNoPrefixes(t *testing.T) {
	rec := &recordingKV{}
	if _, err := ReadPrefixes(context.Background(), rec, nil, 0); err == nil {
		t.Error("read of no prefixes succeeded")
	}
	if n := len(rec.recorded()); n != 0 {
		t.Errorf("%d requests for no prefixes", n)
	}
}

func fmtRequests(reqs []request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.key + " .. " + r.end
	}
	return out
}

// TestReadPrefixesStream reads with one range stream per range span,
// whatever the page size; etcd sends the 125 kB of values in several
// chunks.
func TestReadPrefixesStream(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	want := map[string]string{"/app": "root"}
	for i := range 500 {
		want[fmt.Sprintf("/app/k%03d", i)] = strings.Repeat("v", i)
	}
	put(t, c, want)
	rev := put(t, c, map[string]string{"/apps/outside": "x"})

	rec := &recordingKV{KV: c}
	snap, err := ReadPrefixes(testContext(t, 20*time.Second), rec, []string{"/app"}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshotMap(snap); !reflect.DeepEqual(got, want) {
		t.Errorf("got %d keys, want %d", len(got), len(want))
	}
	if snap.Revision() != rev {
		t.Errorf("revision = %d, want %d", snap.Revision(), rev)
	}
	reqs := rec.recorded()
	checkFixedRevision(t, reqs, rev)
	wantReqs := []request{{key: "/app", rev: 0}, {key: "/app/", end: "/app0", rev: rev, stream: true}}
	if !reflect.DeepEqual(reqs, wantReqs) {
		t.Errorf("requests = %+v, want %+v", reqs, wantReqs)
	}
}

// TestReadPrefixesStreamStartsOverAfterCompaction compacts the revision of a
// read before its range stream: the read starts over at the new revision.
func TestReadPrefixesStreamStartsOverAfterCompaction(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	data := map[string]string{"/a": "a", "/b/1": "1", "/b/2": "2"}
	first := put(t, c, data)

	rec := &recordingKV{KV: c}
	compacted := putAndCompactAfter(t, c, rec, 1, "/b/late") // after the read of the key /a
	snap, err := ReadPrefixes(testContext(t, 20*time.Second), rec, []string{"/a", "/b"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision() != *compacted || *compacted <= first {
		t.Errorf("revision = %d, want %d (after the first read at %d)", snap.Revision(), *compacted, first)
	}
	want := mergeMaps(data, map[string]string{"/b/late": "added"})
	if got := snapshotMap(snap); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	var streams int
	for _, r := range rec.recorded() {
		if r.stream {
			streams++
		}
	}
	// The first attempt's stream of /a/ failed: 2 streams per attempt
	// make 3 in all.
	if streams != 3 {
		t.Errorf("%d range streams, want 3: %+v", streams, rec.recorded())
	}
}
