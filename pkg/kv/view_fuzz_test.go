package kv

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Bounds on what one fuzz input builds, so that every input runs quickly.
const (
	fuzzMaxKeys    = 64
	fuzzMaxRoots   = 8
	fuzzMaxQueries = 64
)

// fuzzLines splits s at newlines into at most n parts; "" is no parts.
func fuzzLines(s string, n int) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, "\n")
	if len(parts) > n {
		parts = parts[:n]
	}
	return parts
}

// FuzzViewLookups checks every lookup of a View against the brute-force
// reference. keys holds the keyspace, one key a line (any bytes but the
// newline: odd characters, empty segments, trailing slashes, unicode), to
// which keys joining some of them to the prefix and roots are added;
// prefix and roots (one a line) make the view; queries, one a line, are
// asked as keys, directories and glob patterns, together with queries
// derived from the keys so that most of them hit something.
func FuzzViewLookups(f *testing.F) {
	f.Add("/app/servers/a\n/app/servers/b\n/app/config/x/y\n/app\n/appx", "", "/app", "/app/servers\n/app/*\n/")
	f.Add("/p/a\n/p/a/b\n/p\n/pa/c\n/p/é/x y", "/p", "/\n/a", "/\n/a/\n/*\n/*/*")
	f.Add("a\n/a//b\n/a/b/\n//\n/", "", "/a", "/a/\n//*\n[\n/a/[b-]")
	f.Fuzz(func(t *testing.T, keys, prefix, roots, queries string) {
		rootList := fuzzLines(roots, fuzzMaxRoots)
		keyList := fuzzKeyspace(fuzzLines(keys, fuzzMaxKeys), prefix, rootList)
		checkViewLookups(t, keyList, prefix, rootList, fuzzLines(queries, fuzzMaxQueries))
	})
}

// checkViewLookups checks every lookup of the views of keys (those of all
// keys and those of prefix and roots, on a snapshot built at once, on one
// derived with changes and on those that more makes) against the
// brute-force reference, for the queries given and some derived from the
// keys.
func checkViewLookups(t *testing.T, keyList []string, prefix string, rootList, queries []string, more ...derivation) {
	t.Helper()
	all := map[string]string{}
	for i, k := range keyList {
		// Few distinct values, so that GetAllValues sorts duplicates.
		all[k] = "v" + strconv.Itoa(i%5)
	}
	qs := fuzzQueries(queries, keyList, prefix)

	built := FromMap(7, all)
	derived := fuzzDerive(all, keyList)
	if got, want := derived.Pairs(), built.Pairs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("derived snapshot holds %q, want %q", got, want)
	}
	type namedSnapshot struct {
		name string
		snap *Snapshot
	}
	snaps := []namedSnapshot{{"built", built}, {"derived", derived}}
	for _, d := range more {
		snaps = append(snaps, namedSnapshot{d.name, d.snapshot(all, keyList)})
	}
	all0 := newReference(all, "", []string{"/"})
	ref := newReference(all, prefix, rootList)
	view := "View(" + strconv.Quote(prefix) + ", " + strconv.Quote(strings.Join(rootList, "|")) + ")"
	for _, s := range snaps {
		checkView(t, s.name+" All()", s.snap.All(), all0, qs)
		checkView(t, s.name+" "+view, s.snap.View(prefix, rootList), ref, qs)
	}
}

// derivation names a way to make a snapshot that holds all, whose keys
// are keys.
type derivation struct {
	name     string
	snapshot func(all map[string]string, keys []string) *Snapshot
}

// TestViewLookupsLargeDirectories checks lookups in directories of more
// keys than countFirst, which ls counts the names of before it lists
// them: leaves, subdirectories of many keys, the directory's own key,
// views whose prefix or roots cut through them, and changes on top of a
// snapshot's base.
func TestViewLookupsLargeDirectories(t *testing.T) {
	var keys []string
	for i := range countFirst + 100 {
		keys = append(keys, "/big/leaf-"+strconv.Itoa(i))
	}
	for i := range 3 * (countFirst + 100) {
		keys = append(keys, "/deep/d"+strconv.Itoa(i%3)+"/"+strconv.Itoa(i))
	}
	keys = append(keys, "/big", "/big/leaf-1/under", "/bigger/x", "/deep", "/deep/d1", "/other/y")
	queries := []string{"/", "/big", "/big/", "/deep", "/deep/", "/deep/d1", "/d1", "/leaf-1", "/big/leaf-1"}
	for _, tc := range []struct {
		name   string
		prefix string
		roots  []string
	}{
		{"all keys", "", []string{"/"}},
		{"roots big and d2", "", []string{"/big", "/deep/d2"}},
		{"prefix big", "/big", []string{"/"}},
		{"prefix deep, roots d1 and d2", "/deep", []string{"/d1", "/d2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkViewLookups(t, keys, tc.prefix, tc.roots, queries, derivation{"few changes",
				func(all map[string]string, keys []string) *Snapshot {
					s := fewChanges(all, keys)
					if s.over == nil {
						t.Fatal("the changes were merged into the base")
					}
					return s
				}})
		})
	}
}

// fewChanges returns a snapshot holding all that was derived with Apply
// from an older one by fewer changes than make Apply merge them into a
// new base: keys put, changed and deleted since.
func fewChanges(all map[string]string, keys []string) *Snapshot {
	old := map[string]string{}
	var changes []Change
	for i, k := range keys {
		switch {
		case i%97 == 1: // put since
			changes = append(changes, Change{Key: k, Value: all[k]})
		case i%89 == 2: // changed since
			old[k] = "stale"
			changes = append(changes, Change{Key: k, Value: all[k]})
		default:
			old[k] = all[k]
		}
		if i%101 == 3 { // deleted since
			for _, extra := range []string{k + "-gone", k + "/gone"} {
				if _, ok := all[extra]; !ok {
					old[extra] = "gone"
					changes = append(changes, Change{Key: extra, Delete: true})
				}
			}
		}
	}
	return FromMap(6, old).Apply(7, changes)
}

// TestListLargeDirectoryAllocations lists a directory of more keys than
// countFirst into a slice of the size of its names. Growing the slice as
// the names come took 12 allocations for these 4,096 names, 9 of them
// slices of names; counting them first takes 5.
func TestListLargeDirectoryAllocations(t *testing.T) {
	b := NewBuilder()
	for i := range 4 * countFirst {
		b.Put(fmt.Sprintf("/big/%06d", i), "v")
	}
	v := b.Build(1).All()
	allocs := testing.AllocsPerRun(5, func() {
		if names := v.List("/big"); len(names) != 4*countFirst {
			t.Fatalf("listed %d names, want %d", len(names), 4*countFirst)
		}
	})
	if allocs > 6 {
		t.Errorf("List of a directory of %d keys made %.0f allocations, want at most 6", 4*countFirst, allocs)
	}
}

// fuzzDerive returns a snapshot holding all that was derived with Apply,
// so that lookups read changes on top of an older snapshot: from one with
// every other key, stale values and keys next to the real ones, by putting
// the rest and deleting the extra keys.
func fuzzDerive(all map[string]string, keys []string) *Snapshot {
	old := map[string]string{}
	var changes []Change
	for i, k := range keys {
		if i%2 == 0 {
			old[k] = all[k]
		} else {
			old[k] = "stale"
			changes = append(changes, Change{Key: k, Value: all[k]})
		}
		if i%3 == 0 {
			for _, extra := range []string{k + "/gone", k + "gone", k + "\x00"} {
				if _, ok := all[extra]; !ok {
					old[extra] = "gone"
					changes = append(changes, Change{Key: extra, Delete: true})
				}
			}
		}
	}
	// Every key the changes name ends up as in all, whatever their order.
	for i, c := range changes {
		if v, ok := all[c.Key]; ok {
			changes[i] = Change{Key: c.Key, Value: v}
		}
	}
	return FromMap(6, old).Apply(7, changes)
}

// fuzzKeyspace returns keys and, so that keys meet the view's boundaries
// often, some of them joined to the prefix and the first roots: below a
// root, and appended to it without a slash.
func fuzzKeyspace(keys []string, prefix string, roots []string) []string {
	p := NormalizeKey(prefix)
	if p == "/" {
		p = ""
	}
	out := slices.Clone(keys)
	for _, r := range roots[:min(len(roots), 4)] {
		base := p + NormalizeKey(r)
		for _, k := range keys[:min(len(keys), 8)] {
			out = append(out, base+"/"+k, base+k)
		}
	}
	return out
}

// fuzzQueries returns the given queries and, for some of the keys, the key,
// its parents, the key with a trailing slash and globs over its last
// segment, each both as is and with the view prefix removed.
func fuzzQueries(given, keys []string, prefix string) []string {
	p := NormalizeKey(prefix)
	seen := map[string]bool{}
	var out []string
	add := func(q string) {
		if !seen[q] && len(out) < fuzzMaxQueries {
			seen[q] = true
			out = append(out, q)
		}
	}
	for _, q := range given {
		add(q)
	}
	for i, k := range keys {
		if i == 4 {
			break
		}
		for _, name := range []string{k, strings.TrimPrefix(k, p)} {
			add(name)
			add(name + "/")
			for j := range len(name) {
				if name[j] == '/' {
					add(name[:j])
					add(name[:j+1])
				}
			}
			if j := strings.LastIndexByte(name, '/'); j >= 0 {
				add(name[:j+1] + "*")
				add(name[:j] + "/*/*")
				add(name[:j+1] + "?*")
			}
		}
	}
	return out
}

// checkView asks v and ref every query and compares the answers.
func checkView(t *testing.T, name string, v *View, ref reference, queries []string) {
	t.Helper()
	for _, q := range queries {
		if got, want := v.List(q), ref.list(q, false); !slices.Equal(got, want) {
			t.Fatalf("%s: List(%q) = %q, want %q", name, q, got, want)
		}
		if got, want := v.ListDir(q), ref.list(q, true); !slices.Equal(got, want) {
			t.Fatalf("%s: ListDir(%q) = %q, want %q", name, q, got, want)
		}
		val, exists := ref.pairs[q]
		if got := v.Exists(q); got != exists {
			t.Fatalf("%s: Exists(%q) = %v, want %v", name, q, got, exists)
		}
		p, err := v.Get(q)
		if exists {
			if err != nil || p != (KVPair{Key: q, Value: val}) {
				t.Fatalf("%s: Get(%q) = %q, %v, want %q", name, q, p, err, val)
			}
		} else {
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != q || !errors.Is(err, ErrNotExist) {
				t.Fatalf("%s: Get(%q) of a missing key = %q, %v, want a *KeyError", name, q, p, err)
			}
		}
		want := val
		if !exists {
			want = "default"
		}
		if got, err := v.GetValue(q, "default"); err != nil || got != want {
			t.Fatalf("%s: GetValue(%q, \"default\") = %q, %v, want %q", name, q, got, err, want)
		}

		pairs, err := v.GetAll(q)
		values, verr := v.GetAllValues(q)
		if _, bad := path.Match(q, ""); bad != nil {
			var pe *PatternError
			if !errors.As(err, &pe) || !errors.Is(err, path.ErrBadPattern) || verr == nil {
				t.Fatalf("%s: GetAll(%q) of a malformed pattern = %v, %v", name, q, pairs, err)
			}
			continue
		}
		wantPairs := ref.getAll(q)
		if err != nil || !reflect.DeepEqual(pairs, wantPairs) {
			t.Fatalf("%s: GetAll(%q) = %q, %v, want %q", name, q, pairs, err, wantPairs)
		}
		wantValues := make([]string, len(wantPairs))
		for i, p := range wantPairs {
			wantValues[i] = p.Value
		}
		sort.Strings(wantValues)
		if verr != nil || !slices.Equal(values, wantValues) {
			t.Fatalf("%s: GetAllValues(%q) = %q, %v, want %q", name, q, values, verr, wantValues)
		}
	}
}
