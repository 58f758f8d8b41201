package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"

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
	cs     grpc.ClientStream
	cancel context.CancelFunc
}

func (st *connStream) next(b *kv.Builder) (answer, error) {
	c := chunk{b: b}
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
	for _, p := range resp.Kvs {
		b.Put(bytesString(p.Key), bytesString(p.Value))
	}
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
	// The first pass checks the answer and sizes the block; the second
	// copies the pairs.
	var size int
	if err := walkChunk(b, func(key, value []byte) { size += len(key) + len(value) }, c.header); err != nil {
		return fmt.Errorf("decode range stream answer: %w", err)
	}
	block := make([]byte, 0, size)
	return walkChunk(b, func(key, value []byte) {
		start := len(block)
		block = append(block, key...)
		block = append(block, value...)
		c.b.Put(blockString(block[start:start+len(key)]), blockString(block[start+len(key):]))
	}, func(*int64) {})
}

// header records a ResponseHeader, and its revision when rev is not nil.
func (c *chunk) header(rev *int64) {
	c.last = true
	if rev != nil {
		c.rev = *rev
	}
}

// blockString returns b as a string sharing b's memory, which nothing
// changes after decode.
func blockString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// walkChunk calls pair for each KeyValue of the RangeStreamResponse b, and
// header with nil for each ResponseHeader and with each revision in one.
func walkChunk(b []byte, pair func(key, value []byte), header func(rev *int64)) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldStreamRange || typ != protowire.BytesType {
			return nil
		}
		return walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			switch {
			case num == fieldRangeHeader && typ == protowire.BytesType:
				header(nil)
				return walkFields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
					if num == fieldHeaderRevision && typ == protowire.VarintType {
						rev := int64(x)
						header(&rev)
					}
					return nil
				})
			case num == fieldRangeKVs && typ == protowire.BytesType:
				var key, value []byte
				err := walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
					switch {
					case num == fieldKVKey && typ == protowire.BytesType:
						key = v
					case num == fieldKVValue && typ == protowire.BytesType:
						value = v
					}
					return nil
				})
				if err == nil {
					pair(key, value)
				}
				return err
			}
			return nil
		})
	})
}

// walkFields calls field for each field of the protobuf message b: with
// the contents of a length-delimited field, or the value of a varint.
// Other wire types are checked and skipped.
func walkFields(b []byte, field func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if !num.IsValid() {
			return fmt.Errorf("invalid field number %d", num)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := field(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
