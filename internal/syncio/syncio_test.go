package syncio

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentWrites writes whole lines from many goroutines, reading
// the Buffer meanwhile: every line arrives whole (run with -race).
func TestConcurrentWrites(t *testing.T) {
	var underlying bytes.Buffer
	w := NewWriter(&underlying)
	var b Buffer
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := []byte(strings.Repeat(string(rune('a'+i)), 50) + "\n")
			for range lines {
				if _, err := w.Write(line); err != nil {
					t.Error(err)
				}
				if _, err := b.Write(line); err != nil {
					t.Error(err)
				}
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	for name, got := range map[string]string{"Writer": underlying.String(), "Buffer": b.String()} {
		all := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(all) != writers*lines {
			t.Fatalf("%s: %d lines, want %d", name, len(all), writers*lines)
		}
		for _, l := range all {
			if len(l) != 50 || strings.Count(l, l[:1]) != 50 {
				t.Fatalf("%s: a line was interleaved: %q", name, l)
			}
		}
	}
}
