package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/etcdconfd/confd/pkg/kv"
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

// TestExecuteChunksBuffer renders a sequence of keyspaces into one Buffer,
// with the fast path and with text/template, and checks each output
// against a render without one; a render no larger than the last one must
// take no new memory for its output.
func TestExecuteChunksBuffer(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, text string }{
		{"fast", `{{range gets "/app/*"}}server {{base .Key}} {{.Value}}
{{end}}`},
		// A method call is not on the fast path.
		{"text/template", `{{range gets "/app/*"}}{{.Key | printf "%s"}} {{.Value}}{{"\n"}}{{end}}`},
		// The fast path fails on the map and text/template runs instead.
		{"fallback", `{{range $i, $p := gets "/app/*"}}{{$p.Value}}{{end}}{{(json "{\"a\":1}").a}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Parse("t.tmpl", tc.text, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var mem Buffer
			sizes := []int{0, 10, 3000, 3000, 2999, 40000, 5, 40000, 40001}
			for i, n := range sizes {
				m := make(map[string]string, n)
				for k := range n {
					m[fmt.Sprintf("/app/k%06d", k)] = fmt.Sprintf("v%d-%d", i, k)
				}
				s := storeOf(m)
				want, err := tmpl.Execute(ctx, s)
				if err != nil {
					t.Fatal(err)
				}
				held := blockSet(mem.blocks)
				chunks, err := tmpl.ExecuteChunks(ctx, s, &mem)
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.Join(chunks, nil); !bytes.Equal(got, want) {
					t.Fatalf("render %d (%d keys): %d bytes with a buffer, %d without, or they differ", i, n, len(got), len(want))
				}
				if i > 0 && n <= sizes[i-1] && n > 0 {
					for _, c := range chunks {
						if !held[&c[:1][0]] {
							t.Errorf("render %d (%d keys, %d before): a chunk of new memory", i, n, sizes[i-1])
						}
					}
				}
			}
		})
	}
}

// blockSet is the first byte of each block.
func blockSet(blocks [][]byte) map[*byte]bool {
	set := map[*byte]bool{}
	for _, b := range blocks {
		if cap(b) > 0 {
			set[&b[:1][0]] = true
		}
	}
	return set
}

func TestExecuteChunksBufferAfterError(t *testing.T) {
	ctx := context.Background()
	tmpl, err := Parse("t.tmpl", `{{range gets "/app/*"}}{{.Value}},{{end}}{{getv "/need"}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mem Buffer
	ok := storeOf(map[string]string{"/app/a": "1", "/app/b": "2", "/need": "x"})
	missing := storeOf(map[string]string{"/app/a": "3", "/app/b": "4"})
	for i, s := range []*kv.View{ok, missing, ok, missing, ok} {
		chunks, err := tmpl.ExecuteChunks(ctx, s, &mem)
		if s == missing {
			if !errors.Is(err, kv.ErrNotExist) {
				t.Fatalf("render %d: error %v, want a missing key", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := string(bytes.Join(chunks, nil)); got != "1,2,x" {
			t.Fatalf("render %d: %q, want %q", i, got, "1,2,x")
		}
	}
}
