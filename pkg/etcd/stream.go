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

// readConnStream reads the keys of s with one range stream on conn, like
// readStream, but decodes etcd's answers itself: the keys and values of a
// chunk are copied into one block of memory and put into the snapshot as
// they are decoded, without the three allocations per key (the KeyValue,
// its key and its value) of the client's decoder, most of them garbage as
// soon as the snapshot has the pair. The call goes through the client's
// connection and so through its interceptors, which add the auth token.
func (r *spanReader) readConnStream(ctx context.Context, conn *grpc.ClientConn, s span) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &pb.RangeRequest{Key: []byte(s.key), RangeEnd: []byte(s.end), Revision: r.rev}
	cs, err := conn.NewStream(sctx, &pb.KV_ServiceDesc.Streams[0], pb.KV_RangeStream_FullMethodName,
		grpc.ForceCodecV2(chunkCodec{}), grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err == nil {
		err = cs.SendMsg(req)
	}
	if err == nil {
		err = cs.CloseSend()
	}
	for err == nil {
		c := chunk{b: r.b}
		if err = cs.RecvMsg(&c); err != nil {
			break
		}
		if c.last { // only the last chunk has the revision
			r.fix(c.rev)
			return nil
		}
	}
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
	b    *kv.Builder
	last bool  // the answer has a header: it is the last one
	rev  int64 // the header's revision
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
