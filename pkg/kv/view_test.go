package kv

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var seedKeys = map[string]string{
	"/app/servers/cocky_morse":       "192.168.1.22:49156",
	"/app/servers/goofy_goldstine":   "192.168.1.22:49158",
	"/app/servers/prickly_blackwell": "192.168.1.22:49154",
	"/app/upstream/py1":              "127.0.0.1:8001",
	"/appx/other":                    "x",
	"/app":                           "root-of-app",
	"/top":                           "t",
}

func TestViewLookups(t *testing.T) {
	v := FromMap(7, seedKeys).All()
	if got := v.Revision(); got != 7 {
		t.Fatalf("Revision() = %d, want 7", got)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"ls servers", v.List("/app/servers"), []string{"cocky_morse", "goofy_goldstine", "prickly_blackwell"}},
		{"ls servers trailing slash", v.List("/app/servers/"), []string{"cocky_morse", "goofy_goldstine", "prickly_blackwell"}},
		{"ls app", v.List("/app"), []string{"app", "servers", "upstream"}},
		{"ls app slash", v.List("/app/"), []string{"servers", "upstream"}},
		{"ls root", v.List("/"), []string{"app", "appx", "top"}},
		{"ls a key", v.List("/app/upstream/py1"), []string{"py1"}},
		{"ls missing", v.List("/nope"), []string{}},
		{"ls no prefix match", v.List("/ap"), []string{}},
		{"lsdir app", v.ListDir("/app/"), []string{"servers", "upstream"}},
		{"lsdir root", v.ListDir("/"), []string{"app", "appx"}},
		{"lsdir servers", v.ListDir("/app/servers"), []string{}},
		{"exists", v.Exists("/app/servers/cocky_morse"), true},
		{"exists dir", v.Exists("/app/servers"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestViewGet(t *testing.T) {
	v := FromMap(1, seedKeys).All()
	p, err := v.Get("/app/servers/cocky_morse")
	if err != nil || p.Value != "192.168.1.22:49156" || p.Key != "/app/servers/cocky_morse" {
		t.Fatalf("Get = %+v, %v", p, err)
	}
	_, err = v.Get("/app/servers/nope")
	if err == nil || err.Error() != "key does not exist: /app/servers/nope" || !errors.Is(err, ErrNotExist) {
		t.Fatalf("Get missing: err = %v", err)
	}
	if got, err := v.GetValue("/nope", "default"); err != nil || got != "default" {
		t.Fatalf("GetValue default = %q, %v", got, err)
	}
	if _, err := v.GetValue("/nope"); err == nil {
		t.Fatal("GetValue missing without default: want error")
	}
	vals, err := v.GetAllValues("/app/servers/*")
	want := []string{"192.168.1.22:49154", "192.168.1.22:49156", "192.168.1.22:49158"}
	if err != nil || !reflect.DeepEqual(vals, want) {
		t.Fatalf("GetAllValues = %q, %v; want %q", vals, err, want)
	}
	if _, err := v.GetAll("/app/[servers"); err == nil {
		t.Fatal("GetAll bad pattern: want error")
	}
}

func TestViewPrefixAndKeys(t *testing.T) {
	s := FromMap(3, map[string]string{
		"/production/app/servers/a": "1",
		"/production/app/servers/b": "2",
		"/production/db/x":          "3",
		"/staging/app/servers/a":    "9",
	})
	v := s.View("production/", []string{"app/servers/"})
	pairs, err := v.GetAll("/app/servers/*")
	want := []KVPair{{"/app/servers/a", "1"}, {"/app/servers/b", "2"}}
	if err != nil || !reflect.DeepEqual(pairs, want) {
		t.Fatalf("GetAll = %v, %v; want %v", pairs, err, want)
	}
	if v.Exists("/db/x") {
		t.Error("key outside the resource's keys is visible")
	}
	if got := v.List("/"); !reflect.DeepEqual(got, []string{"app"}) {
		t.Errorf("List(/) = %q", got)
	}
	if got, _ := v.GetValue("/app/servers/b"); got != "2" {
		t.Errorf("GetValue = %q", got)
	}
}

// randomKeys builds a keyspace with odd characters, empty segments, trailing
// slashes and unicode.
func randomKeys(r *rand.Rand, n int) map[string]string {
	segs := []string{"a", "b", "ab", "a-b", "a.b", "", "é", "x y", "0", "a0", "b/"}
	m := map[string]string{}
	for i := 0; i < n; i++ {
		var sb strings.Builder
		if r.Intn(10) > 0 {
			sb.WriteString("/")
		}
		depth := 1 + r.Intn(4)
		for d := 0; d < depth; d++ {
			if d > 0 {
				sb.WriteString("/")
			}
			sb.WriteString(segs[r.Intn(len(segs))])
		}
		m[sb.String()] = fmt.Sprintf("v%d", r.Intn(5))
	}
	return m
}

func TestViewMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	queries := []string{"/", "", "/a", "/a/", "/ab", "/a/b", "/a-b", "/a//", "//", "a", "/é", "/a/b/", "/b/"}
	patterns := []string{"/*", "/a/*", "/a*", "*", "/*/*", "/a/b/*", "/a?", "/[ab]/*", "//*", "/a/*/*", "a/*"}
	views := []struct {
		prefix string
		keys   []string
	}{
		{"", []string{"/"}},
		{"", []string{"/a"}},
		{"", []string{"/a", "/a/b", "/b"}},
		{"", []string{"/a", "/a-b", "/a/b", "/a.b/x"}},
		{"/a", []string{"/"}},
		{"/a", []string{"/b", "/ab"}},
	}
	for round := 0; round < 40; round++ {
		all := randomKeys(r, 1+r.Intn(60))
		snap := FromMap(int64(round), all)
		for _, vw := range views {
			v := snap.View(vw.prefix, vw.keys)
			ref := newReference(all, vw.prefix, vw.keys)
			for _, q := range queries {
				if got, want := v.List(q), ref.list(q, false); !reflect.DeepEqual(got, want) {
					t.Fatalf("view %v: List(%q) = %q, want %q (keys %q)", vw, q, got, want, all)
				}
				if got, want := v.ListDir(q), ref.list(q, true); !reflect.DeepEqual(got, want) {
					t.Fatalf("view %v: ListDir(%q) = %q, want %q (keys %q)", vw, q, got, want, all)
				}
				_, want := ref.pairs[q]
				if got := v.Exists(q); got != want {
					t.Fatalf("view %v: Exists(%q) = %v, want %v", vw, q, got, want)
				}
			}
			for _, p := range patterns {
				got, err := v.GetAll(p)
				if err != nil {
					t.Fatal(err)
				}
				if want := ref.getAll(p); !reflect.DeepEqual(got, want) {
					t.Fatalf("view %v: GetAll(%q) = %q, want %q (keys %q)", vw, p, got, want, all)
				}
			}
		}
	}
}

// randomChanges puts or, one time in three, deletes each of keys at rev,
// and makes the same changes to state.
func randomChanges(r *rand.Rand, rev int64, keys []string, state map[string]string) []Change {
	var changes []Change
	for _, k := range keys {
		if r.Intn(3) == 0 {
			changes = append(changes, Change{Key: k, Delete: true})
			delete(state, k)
		} else {
			v := fmt.Sprint(rev)
			changes = append(changes, Change{Key: k, Value: v})
			state[k] = v
		}
	}
	return changes
}

func TestApplyLeavesOldSnapshot(t *testing.T) {
	old := FromMap(1, map[string]string{"/a": "1", "/b": "2"})
	next := old.Apply(2, []Change{{Key: "/a", Value: "10"}, {Key: "/b", Delete: true}, {Key: "/c", Value: "3"}})
	if got := old.Pairs(); !reflect.DeepEqual(got, []KVPair{{"/a", "1"}, {"/b", "2"}}) {
		t.Errorf("old snapshot changed: %v", got)
	}
	if got := next.Pairs(); !reflect.DeepEqual(got, []KVPair{{"/a", "10"}, {"/c", "3"}}) {
		t.Errorf("new snapshot = %v", got)
	}
	if next.Revision() != 2 || old.Revision() != 1 {
		t.Errorf("revisions = %d, %d", old.Revision(), next.Revision())
	}
}

func TestApplyMatchesRebuild(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	state := map[string]string{}
	snap := Empty(0)
	for rev := int64(1); rev <= 200; rev++ {
		var keys []string
		for i := 0; i < 1+r.Intn(5); i++ {
			keys = append(keys, fmt.Sprintf("/k/%d", r.Intn(30)))
		}
		snap = snap.Apply(rev, randomChanges(r, rev, keys, state))
		if got, want := snap.Pairs(), FromMap(rev, state).Pairs(); !reflect.DeepEqual(got, want) {
			t.Fatalf("rev %d: derived %v, rebuilt %v", rev, got, want)
		}
	}
}

// TestGetAllSharesTheBaseSafely checks the answer that shares the
// snapshot's memory: equal to a copy's, and appending to it leaves the
// snapshot as it was.
func TestGetAllSharesTheBaseSafely(t *testing.T) {
	s := FromMap(1, map[string]string{"/a/1": "x", "/a/2": "y", "/b": "z"})
	pairs, err := s.All().GetAll("/a/*")
	if err != nil {
		t.Fatal(err)
	}
	want := []KVPair{{"/a/1", "x"}, {"/a/2", "y"}}
	if !slices.Equal(pairs, want) {
		t.Fatalf("GetAll = %v, want %v", pairs, want)
	}
	if cap(pairs) != len(pairs) {
		t.Fatalf("GetAll has room to append to: len %d, cap %d", len(pairs), cap(pairs))
	}
	_ = append(pairs, KVPair{"/a/3", "w"})
	if v, ok := s.Lookup("/b"); !ok || v != "z" {
		t.Fatalf("after an append to GetAll's answer, /b = %q, %v", v, ok)
	}
	// With a change in the range, and with a subtree below the literal,
	// the answer is built: the same pairs either way.
	changed := s.Apply(2, []Change{{Key: "/a/2", Value: "y2"}})
	if got, _ := changed.All().GetAll("/a/*"); !slices.Equal(got, []KVPair{{"/a/1", "x"}, {"/a/2", "y2"}}) {
		t.Fatalf("after a change, GetAll = %v", got)
	}
	deep := FromMap(1, map[string]string{"/a/1": "x", "/a/d/2": "y"})
	if got, _ := deep.All().GetAll("/a/*"); !slices.Equal(got, []KVPair{{"/a/1", "x"}}) {
		t.Fatalf("with a subtree, GetAll = %v", got)
	}
}

// TestGetAllReusesLists lists with one Lists as a daemon's renders do, on
// snapshots derived by changes: every list of a render must hold its own
// pairs until Reset, whatever the lists made after it, and the next
// renders must give the same answers in the same memory.
func TestGetAllReusesLists(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	patterns := []string{"/*", "/a/*", "/a*", "/*/*", "/a/b/*", "/a?", "/[ab]/*", "/a/*/*"}
	var lists Lists
	all := randomKeys(r, 40)
	snap := FromMap(1, all)
	for rev := int64(2); rev < 60; rev++ {
		keys := slices.Sorted(maps.Keys(randomKeys(r, 1+r.Intn(8))))
		snap = snap.Apply(rev, randomChanges(r, rev, keys, all))
		for _, vw := range []struct {
			prefix string
			keys   []string
		}{{"", []string{"/"}}, {"/a", []string{"/"}}, {"", []string{"/a", "/b"}}} {
			v := snap.View(vw.prefix, vw.keys)
			v.ReuseLists(&lists)
			ref := newReference(all, vw.prefix, vw.keys)
			got := make([][]KVPair, len(patterns))
			for i, p := range patterns {
				var err error
				if got[i], err = v.GetAll(p); err != nil {
					t.Fatal(err)
				}
			}
			// An append to one list must leave the others as they were.
			for i := range got {
				_ = append(got[i], KVPair{Key: "/appended", Value: "x"})
			}
			for i, p := range patterns {
				if want := ref.getAll(p); !reflect.DeepEqual(got[i], want) {
					t.Fatalf("rev %d, view %v: GetAll(%q) = %q, want %q", rev, vw, p, got[i], want)
				}
			}
			lists.Reset()
		}
	}
	if lists.used != 0 {
		t.Errorf("after Reset, %d pairs in use", lists.used)
	}
	for i, p := range lists.arena[lists.high:] {
		if p != (KVPair{}) {
			t.Fatalf("pair %d past the last lists holds %q after Reset", lists.high+i, p)
		}
	}
}

// TestListsOutgrownRoom makes a list that outgrows the room it was made
// with, as one would whose bound was short: it goes to memory of its own,
// and the lists made after it do not overwrite the list made before it.
func TestListsOutgrownRoom(t *testing.T) {
	var l Lists
	l.make(16) // memory for what follows, so that no list moves on its own
	l.Reset()
	list := func(room int, keys ...string) []KVPair {
		list := l.make(room)
		for _, k := range keys {
			list = append(list, KVPair{Key: k})
		}
		return l.done(list)
	}
	a := list(3, "a1", "a2", "a3")
	b := list(2, "b1", "b2", "b3", "b4", "b5")
	c := list(3, "c1", "c2", "c3")
	for name, tc := range map[string]struct {
		list []KVPair
		want []string
	}{
		"a": {a, []string{"a1", "a2", "a3"}},
		"b": {b, []string{"b1", "b2", "b3", "b4", "b5"}},
		"c": {c, []string{"c1", "c2", "c3"}},
	} {
		var got []string
		for _, p := range tc.list {
			got = append(got, p.Key)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("list %s = %q, want %q", name, got, tc.want)
		}
	}
}
