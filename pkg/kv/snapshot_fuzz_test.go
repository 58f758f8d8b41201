package kv

import (
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Bounds on what one fuzz input does.
const (
	fuzzMaxOps      = 512
	fuzzMaxBatches  = 24
	fuzzMaxBulkKeys = 100
)

// fuzzKeyTable returns the keys that ops name by index: the lines of keys,
// or when there are none, 256 keys of a few levels that sort among each
// other in interesting ways.
func fuzzKeyTable(keys string) []string {
	if table := fuzzLines(keys, 256); len(table) > 0 {
		return table
	}
	table := make([]string, 256)
	for i := range table {
		switch i % 4 {
		case 0:
			table[i] = fmt.Sprintf("/k/%d", i)
		case 1:
			table[i] = fmt.Sprintf("/k/%d/x", i/3)
		case 2:
			table[i] = fmt.Sprintf("/k%d", i/5)
		default:
			table[i] = fmt.Sprintf("/k/%02x/é", i%16)
		}
	}
	return table
}

// fuzzSnap is one derived snapshot, the state it must hold and its pairs
// when it was derived.
type fuzzSnap struct {
	snap  *Snapshot
	state map[string]string
	pairs []KVPair
}

// FuzzApply derives snapshots with Apply from a random sequence of puts and
// deletes, cut into batches, and checks after every batch that the derived
// snapshot holds exactly what a snapshot rebuilt from scratch with FromMap
// holds, and that every older snapshot still holds what it held.
//
// ops is read two bytes at a time, an operation and a key index into the
// lines of keys (or a built-in table): op%8 is 0-3 put, 4 delete, 5 end of
// batch, 6 put many keys at once (op/8+1 keys from the index on, to grow
// and split the tree), 7 end the batch and continue from the snapshot op/8
// batches back, so that two snapshots are derived from one.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 4, 1, 5, 0, 0, 3, 4, 2, 4, 3}, "")
	f.Add([]byte{0xfe, 0, 5, 0, 4, 10, 4, 11, 0xc4, 20, 0x0f, 1, 0, 1, 4, 1}, "")
	f.Add([]byte{0, 0, 0, 1, 0, 2, 5, 0, 4, 0, 7, 0, 0, 3, 5, 0, 0x0f, 0, 4, 2}, "/a\n/a/b\n\n/a/\n/b\xff\n/é")
	f.Fuzz(func(t *testing.T, ops []byte, keys string) {
		table := fuzzKeyTable(keys)
		if len(ops) > 2*fuzzMaxOps {
			ops = ops[:2*fuzzMaxOps]
		}
		history := []fuzzSnap{{snap: Empty(1), state: map[string]string{}, pairs: []KVPair{}}}
		cur := 0 // the index in history that the next batch derives from
		state := map[string]string{}
		var batch []Change
		// flush derives the next snapshot from batch and checks it and
		// every older one. It reports whether more batches may follow.
		flush := func() bool {
			rev := int64(len(history) + 1)
			next := history[cur].snap.Apply(rev, batch)
			batch = nil
			checkSnapshot(t, fmt.Sprintf("snapshot %d", rev), next, state, table)
			if got := next.Revision(); got != rev {
				t.Fatalf("Revision() = %d, want %d", got, rev)
			}
			for _, h := range history {
				if got := h.snap.Pairs(); !reflect.DeepEqual(got, h.pairs) || h.snap.Len() != len(h.pairs) {
					t.Fatalf("snapshot %d changed after deriving snapshot %d:\n got %q\nwant %q", h.snap.Revision(), rev, got, h.pairs)
				}
			}
			history = append(history, fuzzSnap{snap: next, state: maps.Clone(state), pairs: next.Pairs()})
			cur = len(history) - 1
			return len(history) < fuzzMaxBatches
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, k := ops[i], int(ops[i+1])
			key := table[k%len(table)]
			switch op % 8 {
			case 0, 1, 2, 3:
				v := "v" + strconv.Itoa(i)
				batch = append(batch, Change{Key: key, Value: v})
				state[key] = v
			case 4:
				batch = append(batch, Change{Key: key, Delete: true})
				delete(state, key)
			case 5:
				if !flush() {
					return
				}
			case 6:
				for j := range min(int(op/8)+1, fuzzMaxBulkKeys) {
					key := table[(k+j)%len(table)] + "/" + strconv.Itoa(j)
					v := strings.Repeat("b", j%3)
					batch = append(batch, Change{Key: key, Value: v})
					state[key] = v
				}
			case 7:
				if !flush() {
					return
				}
				cur = max(0, len(history)-1-int(op/8))
				state = maps.Clone(history[cur].state)
			}
		}
		flush()
	})
}

// checkSnapshot compares s with a snapshot rebuilt from state: the pairs
// in order, the length, every lookup, and the scans that views make.
func checkSnapshot(t *testing.T, name string, s *Snapshot, state map[string]string, table []string) {
	t.Helper()
	rebuilt := FromMap(s.Revision(), state)
	got, want := s.Pairs(), rebuilt.Pairs()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: derived pairs %q, rebuilt %q", name, got, want)
	}
	if s.Len() != len(state) {
		t.Fatalf("%s: Len() = %d, want %d", name, s.Len(), len(state))
	}
	for _, k := range table {
		v, ok := s.Lookup(k)
		wv, wok := state[k]
		if v != wv || ok != wok {
			t.Fatalf("%s: Lookup(%q) = %q, %v, want %q, %v", name, k, v, ok, wv, wok)
		}
	}
	for _, dir := range []string{"/", "/k", "/k/1"} {
		if got, want := s.All().List(dir), rebuilt.All().List(dir); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: List(%q) = %q, rebuilt %q", name, dir, got, want)
		}
	}
	n := 0
	s.Ascend(func(KVPair) bool { n++; return n < 3 })
	if want := min(3, len(state)); n != want {
		t.Fatalf("%s: Ascend stopped after %d pairs, want %d", name, n, want)
	}
}
