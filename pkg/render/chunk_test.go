package render

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

func TestChunkWriter(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, tc := range []struct {
		first, writes, maxWrite int
	}{
		{first: 0, writes: 0, maxWrite: 1},
		{first: 100, writes: 3, maxWrite: 10},       // fits the first chunk
		{first: 0, writes: 2000, maxWrite: 100},     // many small chunks
		{first: 10, writes: 40, maxWrite: 3 << 20},  // writes larger than a chunk
		{first: 5 << 20, writes: 50, maxWrite: 1e5}, // a large first chunk
	} {
		t.Run(fmt.Sprintf("first%d/writes%d", tc.first, tc.writes), func(t *testing.T) {
			w := chunkWriter{first: tc.first}
			var want bytes.Buffer
			for i := range tc.writes {
				p := bytes.Repeat([]byte{byte('a' + i%26)}, r.Intn(tc.maxWrite+1))
				write := w.Write
				if i%2 == 1 {
					write = func(p []byte) (int, error) { return w.WriteString(string(p)) }
				}
				n, err := write(p)
				if n != len(p) || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
				}
				want.Write(p)
			}
			got := bytes.Join(w.chunks(), nil)
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("got %d bytes, want %d, or they differ", len(got), want.Len())
			}
			for i, c := range w.chunks() {
				if i > 0 && cap(c) > max(maxChunk, tc.maxWrite) {
					t.Errorf("chunk %d has capacity %d, more than %d", i, cap(c), maxChunk)
				}
			}
		})
	}
}
