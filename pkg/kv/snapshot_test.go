package kv

import (
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"testing"
)

func TestBuilderOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		puts [][2]string
		want []KVPair
	}{
		{name: "ascending", puts: [][2]string{{"/a", "1"}, {"/b", "2"}, {"/c", "3"}},
			want: []KVPair{{"/a", "1"}, {"/b", "2"}, {"/c", "3"}}},
		{name: "descending", puts: [][2]string{{"/c", "3"}, {"/b", "2"}, {"/a", "1"}},
			want: []KVPair{{"/a", "1"}, {"/b", "2"}, {"/c", "3"}}},
		{name: "later put wins", puts: [][2]string{{"/b", "1"}, {"/a", "x"}, {"/b", "2"}, {"/a", "y"}, {"/b", "3"}},
			want: []KVPair{{"/a", "y"}, {"/b", "3"}}},
		{name: "repeat in ascending run", puts: [][2]string{{"/a", "1"}, {"/a", "2"}},
			want: []KVPair{{"/a", "2"}}},
		{name: "none", want: []KVPair{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder()
			for _, p := range tc.puts {
				b.Put(p[0], p[1])
			}
			if got := b.Len(); got != len(tc.want) {
				t.Errorf("Len = %d, want %d", got, len(tc.want))
			}
			s := b.Build(7)
			if got := s.Pairs(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("pairs = %v, want %v", got, tc.want)
			}
			if s.Len() != len(tc.want) || s.Revision() != 7 {
				t.Errorf("Len, Revision = %d, %d; want %d, 7", s.Len(), s.Revision(), len(tc.want))
			}
		})
	}
}

// TestApplyManyChanges derives a long chain of snapshots from a large base,
// enough for the changes to be merged into new bases several times, and
// checks every snapshot of the chain, old ones included, against the state
// it must hold, through Lookup, Len, Pairs and the lookups of a View.
func TestApplyManyChanges(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	state := map[string]string{}
	key := func() string { return fmt.Sprintf("/k/%d/%d", r.Intn(40), r.Intn(40)) }
	for range 800 {
		state[key()] = "base"
	}
	type point struct {
		snap  *Snapshot
		state map[string]string
	}
	history := []point{{FromMap(1, state), maps.Clone(state)}}
	for rev := int64(2); rev <= 400; rev++ {
		var batch []Change
		for range 1 + r.Intn(20) {
			k := key()
			if r.Intn(3) == 0 {
				batch = append(batch, Change{Key: k, Delete: true})
				delete(state, k)
				continue
			}
			v := fmt.Sprint(rev)
			batch = append(batch, Change{Key: k, Value: v})
			state[k] = v
		}
		snap := history[len(history)-1].snap.Apply(rev, batch)
		history = append(history, point{snap, maps.Clone(state)})
	}
	for i, h := range history {
		if i%37 != 0 && i != len(history)-1 {
			continue
		}
		checkState(t, fmt.Sprintf("revision %d", h.snap.Revision()), h.snap, h.state)
	}
}

func checkState(t *testing.T, name string, s *Snapshot, state map[string]string) {
	t.Helper()
	want := make([]KVPair, 0, len(state))
	for _, k := range slices.Sorted(maps.Keys(state)) {
		want = append(want, KVPair{k, state[k]})
	}
	if got := s.Pairs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %d pairs differ from the %d of the state", name, len(got), len(want))
	}
	if s.Len() != len(state) {
		t.Errorf("%s: Len = %d, want %d", name, s.Len(), len(state))
	}
	for _, k := range []string{"/k/1/1", "/k/7/30", "/k/39/0", "/k/0", "/nope"} {
		v, ok := s.Lookup(k)
		wv, wok := state[k]
		if v != wv || ok != wok {
			t.Errorf("%s: Lookup(%s) = %q, %t; want %q, %t", name, k, v, ok, wv, wok)
		}
	}
	ref := newReference(state, "", []string{"/"})
	v := s.All()
	for _, pattern := range []string{"/k/1/*", "/k/*/3", "/k/*", "/k/1?/2*"} {
		got, err := v.GetAll(pattern)
		if err != nil {
			t.Fatal(err)
		}
		if want := ref.getAll(pattern); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: GetAll(%s) = %d pairs, want %d", name, pattern, len(got), len(want))
		}
	}
	for _, dir := range []string{"/k", "/k/3", "/"} {
		if got, want := v.List(dir), ref.list(dir, false); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: List(%s) = %v, want %v", name, dir, got, want)
		}
		if got, want := v.ListDir(dir), ref.list(dir, true); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ListDir(%s) = %v, want %v", name, dir, got, want)
		}
	}
}

// TestLookupNear looks keys up through one View in ascending, descending,
// repeated and random order, present and missing ones, in a snapshot with
// changes on top of its base, against the state it holds.
func TestLookupNear(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	state := map[string]string{}
	b := NewBuilder()
	for i := range 3000 {
		k := fmt.Sprintf("/app/s/%05d", 2*i)
		state[k] = fmt.Sprint(i)
		b.Put(k, state[k])
	}
	s := b.Build(1)
	var changes []Change
	for range 40 {
		k := fmt.Sprintf("/app/s/%05d", r.Intn(6000))
		if r.Intn(2) == 0 {
			changes = append(changes, Change{Key: k, Value: "changed"})
			state[k] = "changed"
		} else {
			changes = append(changes, Change{Key: k, Delete: true})
			delete(state, k)
		}
	}
	s = s.Apply(2, changes)
	v := s.All()
	var keys []string
	for i := -1; i <= 6001; i++ {
		keys = append(keys, fmt.Sprintf("/app/s/%05d", i))
	}
	keys = append(keys, "/", "/app", "/app/s/", "/zzz")
	check := func(order string, ks []string) {
		t.Helper()
		for _, k := range ks {
			got, err := v.GetValue(k)
			want, ok := state[k]
			if ok != (err == nil) || got != want {
				t.Fatalf("%s: GetValue(%q) = %q, %v; want %q, present %t", order, k, got, err, want, ok)
			}
		}
	}
	check("ascending", keys)
	desc := slices.Clone(keys)
	slices.Reverse(desc)
	check("descending", desc)
	var twice []string
	for _, k := range keys {
		twice = append(twice, k, k)
	}
	check("repeated", twice)
	shuffled := slices.Clone(keys)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	check("random", shuffled)
}

// TestMaxInRange bounds the keys of a range by the keys of the base in it
// and every change when the changes are fewer, and else by those keys and
// the puts among the changes in the range.
func TestMaxInRange(t *testing.T) {
	b := NewBuilder()
	for i := range 1000 {
		b.Put(fmt.Sprintf("/a/%04d", i), "v")
	}
	for i := range 100 {
		b.Put(fmt.Sprintf("/b/%03d", i), "v")
	}
	var changes []Change
	for i := range 20 {
		changes = append(changes, Change{Key: fmt.Sprintf("/a/%04d", i), Value: "changed"})
	}
	for i := range 30 {
		changes = append(changes, Change{Key: fmt.Sprintf("/a/%04d", 500+i), Delete: true})
	}
	for i := range 40 {
		changes = append(changes, Change{Key: fmt.Sprintf("/b/new-%02d", i), Value: "new"})
	}
	for i := range 10 {
		changes = append(changes, Change{Key: fmt.Sprintf("/c/%d", i), Value: "new"})
	}
	s := b.Build(1).Apply(2, changes)
	if s.over == nil {
		t.Fatal("the changes were merged into the base")
	}
	for _, tc := range []struct {
		lo, hi string
		want   int // the bound
		keys   int // the keys in range
	}{
		{"/a/", "/a0", 1000 + 100, 1000 - 30}, // 100 changes in all
		{"/b/", "/b0", 100 + 100, 140},
		{"/c/", "/c0", 10, 10},
		{"/d/", "/d0", 0, 0},
		{"/a/0500", "/a/0530", 30, 0},
		{"/a/0000", "/a/0050", 50 + 20, 50},
		{"", "", 1100 + 100, 1100 - 30 + 40 + 10},
	} {
		keys := 0
		s.Ascend(func(p KVPair) bool {
			if p.Key >= tc.lo && (tc.hi == "" || p.Key < tc.hi) {
				keys++
			}
			return true
		})
		if keys != tc.keys {
			t.Fatalf("[%q, %q) holds %d keys, want %d", tc.lo, tc.hi, keys, tc.keys)
		}
		if got := s.maxInRange(tc.lo, tc.hi); got != tc.want {
			t.Errorf("maxInRange(%q, %q) = %d, want %d (the range holds %d keys)", tc.lo, tc.hi, got, tc.want, keys)
		}
	}
}
