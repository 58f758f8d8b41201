package etcd

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// loadBenchKeys puts n keys under /app/servers and n under /svc, as the
// end-to-end benchmark does.
func loadBenchKeys(b *testing.B, c *clientv3.Client, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ops := make([]clientv3.Op, 0, 100)
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		v := fmt.Sprintf("10.%d.%d.%d:%d", i>>16&255, i>>8&255, i&255, 8000+i%1000)
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("/app/servers/srv-%d", i), v),
			clientv3.OpPut(fmt.Sprintf("/svc/s%d/%d", i%100, i/100), v))
		if len(ops) >= 100 {
			flush()
		}
	}
	flush()
}

// BenchmarkReadPrefixes100k reads 100,000 keys of a keyspace of 200,000
// from a real etcd in this process (so its figures include etcd's own
// work): with a range stream, and page by page as from an etcd without
// range streams.
func BenchmarkReadPrefixes100k(b *testing.B) {
	const n = 100000
	c := etcdtest.Start(b).Client(b)
	loadBenchKeys(b, c, n)
	for _, tc := range []struct {
		name string
		kv   clientv3.KV
		page int
	}{
		{"stream", c, 0},
		{"page=10000", &recordingKV{KV: c, noStream: true}, 10000},
		{"page=50000", &recordingKV{KV: c, noStream: true}, 50000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := ReadPrefixes(context.Background(), tc.kv, []string{"/app/servers"}, tc.page)
				if err != nil {
					b.Fatal(err)
				}
				if s.Len() != n {
					b.Fatalf("read %d keys, want %d", s.Len(), n)
				}
			}
		})
	}
}
