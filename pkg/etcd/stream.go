package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/etcdconfd/confd/pkg/kv"
)

// connector is what a *clientv3.Client offers to reach its gRPC
// connection, on which ReadPrefixes runs range streams of its own.
type connector interface {
	ActiveConnection() *grpc.ClientConn
}

// rangeStream is one range stream of etcd: etcd sends the keys of a range
// in chunks of bounded size, all at the revision of the stream, and
// neither side waits for the other between chunks. Unlike pages of a paged
// read, a chunk does not make etcd count the keys that follow it, so the
// cost of a read grows with the number of keys and not with its square.
type rangeStream interface {
	// next puts the pairs of the next answer into b.
	next(b *kv.Builder) (answer, error)
	// close ends the stream, read to its end or not, and waits for what
	// it started.
	close()
}

// answer is what next says of an answer of a range stream.
type answer struct {
	last bool // the last answer, which alone has the revision
	rev  int64
}

// readStream reads the keys of s with one range stream.
func (r *spanReader) readStream(ctx context.Context, s span) error {
	st, err := r.openStream(ctx, s)
	if err != nil {
		return r.streamError(ctx, s, err)
	}
	defer st.close()
	for {
		a, err := st.next(r.b)
		if err != nil {
			return r.streamError(ctx, s, err)
		}
		if a.last {
			r.fix(a.rev)
			return nil
		}
	}
}

// openStream opens a range stream of the keys of s at r.rev (the current
// revision when 0). On a client's own connection the answers are decoded
// by chunkCodec: the keys and values of an answer are copied into one
// block of memory and put into the snapshot as they are decoded, without
// the three allocations per key (the KeyValue, its key and its value) of
// the client's decoder, most of them garbage as soon as the snapshot has
// the pair. The call goes through the client's connection and so through
// its interceptors, which add the auth token. Other clients decode with
// the client's GetStream. The error of an etcd without range streams
// wraps the gRPC status Unimplemented.
func (r *spanReader) openStream(ctx context.Context, s span) (rangeStream, error) {
	sctx, cancel := context.WithCancel(ctx)
	c, ok := r.c.(connector)
	if !ok {
		opts := []clientv3.OpOption{clientv3.WithRange(s.end)}
		if r.rev != 0 {
			opts = append(opts, clientv3.WithRev(r.rev))
		}
		ch, err := r.c.GetStream(sctx, s.key, opts...)
		if err != nil {
			cancel()
			return nil, err
		}
		return &clientStream{ch: ch, cancel: cancel}, nil
	}
	req := &pb.RangeRequest{Key: []byte(s.key), RangeEnd: []byte(s.end), Revision: r.rev}
	cs, err := c.ActiveConnection().NewStream(sctx, &pb.KV_ServiceDesc.Streams[0], pb.KV_RangeStream_FullMethodName,
		grpc.ForceCodecV2(chunkCodec{}), grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err == nil {
		err = cs.SendMsg(req)
	}
	if err == nil {
		err = cs.CloseSend()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &connStream{cs: cs, cancel: cancel}, nil
}

// streamError is the error of a read of s with a range stream that failed
// with err.
func (r *spanReader) streamError(ctx context.Context, s span, err error) error {
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case errors.Is(err, io.EOF):
		err = errors.New("range stream ended without its last chunk")
	default:
		err = rpctypes.Error(err)
	}
	return readError(r.c, s, r.rev, err)
}

// connStream is a range stream on a client's connection.
type connStream struct {
	cs      grpc.ClientStream
	cancel  context.CancelFunc
	scratch []kvBytes
}

func (st *connStream) next(b *kv.Builder) (answer, error) {
	c := chunk{b: b, scratch: &st.scratch}
	err := st.cs.RecvMsg(&c)
	return c.answer, err
}

func (st *connStream) close() { st.cancel() }

// clientStream is a range stream of the client's GetStream.
type clientStream struct {
	ch     clientv3.GetStreamChan
	cancel context.CancelFunc
}

func (st *clientStream) next(b *kv.Builder) (answer, error) {
	resp, ok := <-st.ch
	if !ok {
		return answer{}, io.EOF
	}
	if err := resp.Err(); err != nil {
		return answer{}, err
	}
	putKVs(b, resp.Kvs)
	if resp.Header == nil {
		return answer{}, nil
	}
	return answer{last: true, rev: resp.Header.Revision}, nil
}

// close cancels the stream and drains its channel: the client's goroutine
// behind it ends only then.
func (st *clientStream) close() {
	st.cancel()
	for range st.ch {
	}
}

// chunkCodec encodes requests with protobuf and decodes the answers of a
// range stream into a chunk. Its name is protobuf's, so etcd sees the
// usual content type.
type chunkCodec struct{}

func (chunkCodec) Name() string { return "proto" }

func (chunkCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("encode %T: not a protobuf message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c, ok := v.(*chunk)
	if !ok {
		return fmt.Errorf("decode into %T: not a range stream chunk", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return c.decode(buf.ReadOnlyData())
}

// chunk is one answer of a range stream (a RangeStreamResponse), decoded
// into a snapshot builder.
type chunk struct {
	b *kv.Builder
	// scratch, when not nil, is kept from one answer to the next to
	// collect the pairs of an answer before they are copied.
	scratch *[]kvBytes
	answer
}

// Field numbers of the messages a chunk decodes.
const (
	fieldStreamRange    = 1 // RangeStreamResponse.range_response
	fieldRangeHeader    = 1 // RangeResponse.header
	fieldRangeKVs       = 2 // RangeResponse.kvs
	fieldHeaderRevision = 3 // ResponseHeader.revision
	fieldKVKey          = 1 // KeyValue.key
	fieldKVValue        = 5 // KeyValue.value
)

// decode puts the pairs of the RangeStreamResponse b into c.b, in the
// order sent, with their keys and values in one block of memory of their
// exact size. It decodes as protobuf does: fields it does not need are
// skipped, a message field sent twice is merged and a scalar sent twice
// keeps its last value. A malformed answer is an error and puts nothing.
func (c *chunk) decode(b []byte) error {
	var pairs []kvBytes
	if c.scratch != nil {
		pairs = (*c.scratch)[:0]
	}
	pairs, size, err := c.scan(b, pairs)
	if err != nil {
		return fmt.Errorf("decode range stream answer: %w", err)
	}
	block := make([]byte, 0, size)
	for _, p := range pairs {
		start := len(block)
		block = append(append(block, p.key...), p.value...)
		kv := block[start:]
		c.b.Put(bytesString(kv[:len(p.key)]), bytesString(kv[len(p.key):]))
	}
	if c.scratch != nil {
		clear(pairs) // they point into b, which gRPC reuses
		*c.scratch = pairs[:0]
	}
	return nil
}

// kvBytes is the key and value of a KeyValue, in the answer decoded.
type kvBytes struct {
	key, value []byte
}

// scan reads the RangeStreamResponse b: it appends the key and value of
// each KeyValue to pairs, records the header and returns the size of the
// keys and values.
func (c *chunk) scan(b []byte, pairs []kvBytes) (_ []kvBytes, size int, err error) {
	for len(b) > 0 {
		var f field
		if b, err = f.next(b); err != nil {
			return nil, 0, err
		}
		if f.num != fieldStreamRange || f.typ != protowire.BytesType {
			continue
		}
		for r := f.v; len(r) > 0; {
			var g field
			if r, err = g.next(r); err != nil {
				return nil, 0, err
			}
			switch {
			case g.num == fieldRangeHeader && g.typ == protowire.BytesType:
				if err := c.scanHeader(g.v); err != nil {
					return nil, 0, err
				}
			case g.num == fieldRangeKVs && g.typ == protowire.BytesType:
				key, value, err := scanKV(g.v)
				if err != nil {
					return nil, 0, err
				}
				size += len(key) + len(value)
				pairs = append(pairs, kvBytes{key, value})
			}
		}
	}
	return pairs, size, nil
}

// scanHeader checks the ResponseHeader b, notes that the chunk is the
// last and keeps the last revision in b.
func (c *chunk) scanHeader(b []byte) error {
	c.last = true
	for len(b) > 0 {
		var f field
		var err error
		if b, err = f.next(b); err != nil {
			return err
		}
		if f.num == fieldHeaderRevision && f.typ == protowire.VarintType {
			c.rev = int64(f.x)
		}
	}
	return nil
}

// scanKV returns the key and value of the KeyValue b.
func scanKV(b []byte) (key, value []byte, err error) {
	for len(b) > 0 {
		var f field
		if b, err = f.next(b); err != nil {
			return nil, nil, err
		}
		switch {
		case f.num == fieldKVKey && f.typ == protowire.BytesType:
			key = f.v
		case f.num == fieldKVValue && f.typ == protowire.BytesType:
			value = f.v
		}
	}
	return key, value, nil
}

// field is one field of a protobuf message: the contents of a
// length-delimited field in v, the value of a varint in x.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   []byte
	x   uint64
}

// next reads the field at the start of b into f and returns the rest of
// b. Fields of other wire types are checked and skipped.
func (f *field) next(b []byte) ([]byte, error) {
	// Tags of the fields a chunk has fit in one byte, and so do most
	// lengths and revisions: read those here, and leave the rest to
	// protowire.
	if len(b) >= 2 && b[0] < 0x80 && b[0] >= 8 && b[1] < 0x80 {
		f.num, f.typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		switch f.typ {
		case protowire.VarintType:
			f.x = uint64(b[1])
			return b[2:], nil
		case protowire.BytesType:
			if n := int(b[1]); n <= len(b)-2 {
				f.v = b[2 : 2+n]
				return b[2+n:], nil
			}
		}
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return nil, protowire.ParseError(n)
	}
	if !num.IsValid() {
		return nil, fmt.Errorf("invalid field number %d", num)
	}
	b = b[n:]
	f.num, f.typ = num, typ
	switch typ {
	case protowire.BytesType:
		f.v, n = protowire.ConsumeBytes(b)
	case protowire.VarintType:
		f.x, n = protowire.ConsumeVarint(b)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return nil, protowire.ParseError(n)
	}
	return b[n:], nil
}
