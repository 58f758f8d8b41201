package etcd

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/etcdconfd/confd/internal/etcdtest"
	"github.com/etcdconfd/confd/pkg/kv"
)

// TestReadPrefixesConnStream reads keys and values that test a decoder
// (binary bytes, empty values, values of 1 MB that etcd sends in chunks of
// their own) with the client itself, which decodes etcd's answers with
// readConnStream, and through a wrapper, which has the client decode them:
// both reads must give every key at the same revision.
func TestReadPrefixesConnStream(t *testing.T) {
	c := etcdtest.Start(t).Client(t)
	if _, ok := any(c).(connector); !ok {
		t.Fatal("the client offers no connection: ReadPrefixes would not use its own decoder")
	}
	want := map[string]string{
		"/app":             "root",
		"/app/empty":       "",
		"/app/bin\x00\xff": "\x00\x01\xfe\xff",
		"/app/utf8/é":      "ü",
		"/app/big/1":       strings.Repeat("a", 1<<20),
		"/app/big/2":       strings.Repeat("b", 1<<20),
	}
	for i := range 3000 {
		want[fmt.Sprintf("/app/servers/srv-%d", i)] = fmt.Sprintf("10.0.%d.%d:80", i/256, i%256)
	}
	put(t, c, want)
	rev := put(t, c, map[string]string{"/apps/outside": "x"})

	for _, tc := range []struct {
		name     string
		prefixes []string
		want     map[string]string
	}{
		{"prefix", []string{"/app"}, want},
		{"all keys", []string{"/"}, mergeMaps(want, map[string]string{"/apps/outside": "x"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own, err := ReadPrefixes(testContext(t, 20*time.Second), c, tc.prefixes, 0)
			if err != nil {
				t.Fatal(err)
			}
			client, err := ReadPrefixes(testContext(t, 20*time.Second), &recordingKV{KV: c}, tc.prefixes, 0)
			if err != nil {
				t.Fatal(err)
			}
			for name, snap := range map[string]*kv.Snapshot{"own decoder": own, "client's decoder": client} {
				if got := snapshotMap(snap); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s: got %d keys, want %d", name, len(got), len(tc.want))
				}
				if snap.Revision() != rev {
					t.Errorf("%s: revision = %d, want %d", name, snap.Revision(), rev)
				}
			}
		})
	}
}

// decodeChunk decodes b with chunk.decode.
func decodeChunk(b []byte) (pairs []kv.KVPair, last bool, rev int64, err error) {
	bld := kv.NewBuilder()
	var puts []kv.KVPair
	c := chunk{b: bld}
	if err := c.decode(b); err != nil {
		return nil, false, 0, err
	}
	bld.Build(0).Ascend(func(p kv.KVPair) bool { puts = append(puts, p); return true })
	return puts, c.last, c.rev, nil
}

// protoChunk decodes b with protobuf, as the client does.
func protoChunk(b []byte) (pairs []kv.KVPair, last bool, rev int64, err error) {
	var m etcdserverpb.RangeStreamResponse
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, false, 0, err
	}
	bld := kv.NewBuilder()
	r := m.GetRangeResponse()
	for _, p := range r.GetKvs() {
		bld.Put(string(p.Key), string(p.Value))
	}
	bld.Build(0).Ascend(func(p kv.KVPair) bool { pairs = append(pairs, p); return true })
	return pairs, r.GetHeader() != nil, r.GetHeader().GetRevision(), nil
}

func marshalChunk(t testing.TB, m *etcdserverpb.RangeStreamResponse) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chunkSeeds are answers etcd sends, and some it does not: a header sent
// twice, fields of the wrong wire type, unknown fields.
func chunkSeeds(t testing.TB) [][]byte {
	kvs := []*mvccpb.KeyValue{
		{Key: []byte("/a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 3, Version: 1, Lease: 7},
		{Key: []byte("/b"), Value: nil},
		{Key: []byte("/c\x00\xff"), Value: []byte("\xff")},
	}
	middle := marshalChunk(t, &etcdserverpb.RangeStreamResponse{RangeResponse: &etcdserverpb.RangeResponse{Kvs: kvs}})
	last := marshalChunk(t, &etcdserverpb.RangeStreamResponse{RangeResponse: &etcdserverpb.RangeResponse{
		Kvs: kvs[:1], More: true, Count: 9, Header: &etcdserverpb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 42, RaftTerm: 3}}})
	noRev := marshalChunk(t, &etcdserverpb.RangeStreamResponse{RangeResponse: &etcdserverpb.RangeResponse{
		Header: &etcdserverpb.ResponseHeader{MemberId: 2}}})
	var wrongType []byte
	wrongType = protowire.AppendTag(wrongType, fieldStreamRange, protowire.BytesType)
	var inner []byte
	inner = protowire.AppendTag(inner, fieldRangeKVs, protowire.VarintType)
	inner = protowire.AppendVarint(inner, 5)
	inner = protowire.AppendTag(inner, 99, protowire.Fixed32Type)
	inner = protowire.AppendFixed32(inner, 1)
	wrongType = protowire.AppendBytes(wrongType, inner)
	return [][]byte{
		nil, middle, last, noRev, wrongType,
		append(append([]byte{}, last...), middle...), // merged: header, then more pairs
		append(append([]byte{}, last...), noRev...),  // a second header without a revision keeps 42
		last[:len(last)-1],                           // cut short
		{0x0a, 0x80},                                 // a bad length
		{0x00},                                       // field number 0
	}
}

// TestChunkDecode checks the decoder against protobuf's on chunkSeeds.
func TestChunkDecode(t *testing.T) {
	for i, b := range chunkSeeds(t) {
		checkChunk(t, fmt.Sprintf("seed %d", i), b)
	}
	// What etcd sends is read as sent.
	pairs, last, rev, err := decodeChunk(chunkSeeds(t)[2])
	if err != nil || !last || rev != 42 || len(pairs) != 1 || pairs[0] != (kv.KVPair{Key: "/a", Value: "1"}) {
		t.Errorf("last chunk = %v, %v, %d, %v", pairs, last, rev, err)
	}
}

// checkChunk fails unless chunk.decode and protobuf agree on b: the same
// pairs, header and revision, or both an error.
func checkChunk(t *testing.T, name string, b []byte) {
	t.Helper()
	gotPairs, gotLast, gotRev, gotErr := decodeChunk(b)
	wantPairs, wantLast, wantRev, wantErr := protoChunk(b)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%s %x: decode error %v, protobuf's %v", name, b, gotErr, wantErr)
	}
	if !reflect.DeepEqual(gotPairs, wantPairs) || gotLast != wantLast || gotRev != wantRev {
		t.Errorf("%s %x: decoded %q header %v revision %d, protobuf %q header %v revision %d",
			name, b, gotPairs, gotLast, gotRev, wantPairs, wantLast, wantRev)
	}
}

// FuzzChunkDecode checks the decoder of range stream answers against
// protobuf's on any input.
func FuzzChunkDecode(f *testing.F) {
	for _, b := range chunkSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkChunk(t, "input", b)
	})
}

// BenchmarkChunkDecode decodes an answer of 10,000 keys as etcd sends them
// in a range stream of the benchmark's keyspace, against protobuf's
// decoder into the client's message.
func BenchmarkChunkDecode(b *testing.B) {
	kvs := make([]*mvccpb.KeyValue, 10000)
	for i := range kvs {
		kvs[i] = &mvccpb.KeyValue{Key: fmt.Appendf(nil, "/app/servers/srv-%d", i), Value: fmt.Appendf(nil, "10.0.%d.%d:%d", i>>8&255, i&255, 8000+i%1000),
			CreateRevision: int64(2 + i), ModRevision: int64(2 + i), Version: 1}
	}
	msg := marshalChunk(b, &etcdserverpb.RangeStreamResponse{RangeResponse: &etcdserverpb.RangeResponse{Kvs: kvs}})
	b.Run("chunk", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		var scratch []kvBytes
		for b.Loop() {
			c := chunk{b: kv.NewBuilder(), scratch: &scratch}
			if err := c.decode(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protobuf", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			var m etcdserverpb.RangeStreamResponse
			if err := proto.Unmarshal(msg, &m); err != nil {
				b.Fatal(err)
			}
			bld := kv.NewBuilder()
			for _, p := range m.RangeResponse.Kvs {
				bld.Put(bytesString(p.Key), bytesString(p.Value))
			}
		}
	})
}
