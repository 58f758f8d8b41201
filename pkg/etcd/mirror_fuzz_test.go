package etcd

import (
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/pkg/kv"
)

// fuzzKeys are the keys events name when the input gives none: around the
// prefix /app on both sides of its key boundaries.
var fuzzKeys = []string{
	"/app", "/app/a", "/app/a/b", "/app/", "/app//x", "/appx", "/app0", "/app.",
	"/ap", "/b", "/b/c", "/", "\x00", "/app/\xff", "/app\x00", "/é/ü",
}

// fuzzList splits s at newlines into at most n parts; "" is no parts.
func fuzzList(s string, n int) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, "\n")
	return parts[:min(len(parts), n)]
}

// visibleTo is the brute-force meaning of prefixes: a key is read when it
// is a normalised prefix or below one, or when a prefix is "/".
func visibleTo(prefixes []string, key string) bool {
	for _, p := range prefixes {
		root := kv.NormalizeKey(p)
		if root == "/" || key == root || strings.HasPrefix(key, root+"/") {
			return true
		}
	}
	return false
}

// inWatch reports whether etcd sends the events of key to a watch on
// watchRange's key and options, which the test reads back through an Op.
func inWatch(op clientv3.Op, key string) bool {
	from, end := string(op.KeyBytes()), string(op.RangeBytes())
	switch {
	case end == "":
		return key == from
	case end == "\x00":
		return key >= from
	}
	return key >= from && key < end
}

// FuzzMirrorEvents replays the mirror's work on a made-up etcd history: a
// snapshot of the prefixes at some revision R, then a watch from R whose
// responses go through filterEvents and kv.Snapshot.Apply, as Mirror.watch
// does. After every response the mirrored snapshot must hold exactly the
// keys of the prefixes at etcd's current revision, and inSpans must agree
// with the brute-force meaning of the prefixes. Keys outside the range that
// watchRange asks for never reach the mirror, as with etcd.
//
// prefixes and keys are lists, one a line (keys default to a built-in
// table). ops is read two bytes at a time, an operation and a key index:
// op%8 is 0-2 put in a new revision, 3 put in the same revision (a
// transaction), 4 delete in a new revision, 5 end of a watch response,
// 6 take the snapshot here (once), 7 nothing.
func FuzzMirrorEvents(f *testing.F) {
	f.Add("/app", []byte{0, 1, 0, 5, 6, 0, 0, 2, 3, 3, 5, 0, 4, 1, 0, 6, 5, 0, 4, 2}, "")
	f.Add("/app/\n/b//\n/app/a", []byte{0, 0, 0, 8, 0, 9, 6, 0, 4, 0, 3, 10, 5, 0, 0, 3, 0, 7, 4, 8}, "")
	f.Add("/", []byte{0, 11, 0, 12, 6, 0, 4, 11, 0, 13, 5, 0, 0, 14}, "")
	f.Add("a\n..", []byte{0, 0, 0, 1, 0, 2, 6, 0, 0, 3, 4, 0}, "a\n/a\n/a/\n..\n/..x\n/a0")
	f.Fuzz(func(t *testing.T, prefixes string, ops []byte, keys string) {
		plist := fuzzList(prefixes, 6)
		if len(plist) == 0 {
			plist = []string{"/app"}
		}
		table := fuzzKeys
		if ks := fuzzList(keys, 64); len(ks) > 0 {
			table = ks
		}
		ops = ops[:min(len(ops), 512)]

		spans := prefixSpans(plist)
		if len(spans) == 0 {
			t.Fatalf("prefixSpans(%q) is empty", plist)
		}
		for _, k := range table {
			if got, want := inSpans(spans, k), visibleTo(plist, k); got != want {
				t.Fatalf("inSpans(%q) = %v for prefixes %q, want %v", k, got, plist, want)
			}
		}
		wkey, wopts := watchRange(spans)
		watch := clientv3.OpGet(wkey, wopts...)

		// The history of etcd: the whole keyspace after each revision.
		// Revision 1 is the empty keyspace; a sealed revision takes no
		// more events.
		rev, sealed := int64(1), true
		state := map[string]string{}
		history := map[int64]map[string]string{1: {}}
		var atRev []*clientv3.Event  // the events of revision rev
		var events []*clientv3.Event // the watch's undelivered events
		var snap *kv.Snapshot

		// deliver sends the undelivered events as one watch response and
		// checks that the mirror then holds the keyspace of the prefixes
		// at the current revision.
		deliver := func() {
			sealed = true
			if snap == nil {
				return
			}
			if len(events) > 0 {
				snap = applyResponse(t, snap, spans, events, events[len(events)-1].Kv.ModRevision)
				events = nil
			}
			want := map[string]string{}
			for k, v := range history[rev] {
				if visibleTo(plist, k) {
					want[k] = v
				}
			}
			if got, want := snap.Pairs(), kv.FromMap(0, want).Pairs(); !reflect.DeepEqual(got, want) {
				t.Fatalf("prefixes %q: mirror at revision %d holds\n%q\nwant the keys at revision %d:\n%q",
					plist, snap.Revision(), got, rev, want)
			}
			if snap.Revision() > rev {
				t.Fatalf("mirror at revision %d, beyond etcd's %d", snap.Revision(), rev)
			}
		}

		for i := 0; i+1 < len(ops); i += 2 {
			op, key := ops[i]%8, table[int(ops[i+1])%len(table)]
			switch op {
			case 0, 1, 2, 3, 4:
				if key == "" {
					continue // etcd has no empty key
				}
				_, exists := state[key]
				if op == 4 && !exists {
					continue // etcd sends no event for a missing key
				}
				// A transaction touches a key at most once.
				if op != 3 || sealed || touches(atRev, key) {
					rev++
					sealed, atRev = false, nil
				}
				ev := &clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
				if op == 4 {
					ev.Type = mvccpb.DELETE
					delete(state, key)
				} else {
					ev.Kv.Value = []byte("v" + strconv.Itoa(i))
					state[key] = string(ev.Kv.Value)
				}
				atRev = append(atRev, ev)
				if snap != nil && inWatch(watch, key) {
					events = append(events, ev)
				}
				history[rev] = maps.Clone(state)
			case 5:
				deliver()
			case 6:
				if snap != nil {
					continue
				}
				sealed = true
				b := kv.NewBuilder()
				for k, v := range state {
					if visibleTo(plist, k) {
						b.Put(k, v)
					}
				}
				snap = b.Build(rev)
				// The watch starts at the snapshot's own revision, so
				// etcd sends that revision's events again.
				for _, ev := range atRev {
					if inWatch(watch, string(ev.Kv.Key)) {
						events = append(events, ev)
					}
				}
			}
		}
		deliver()
	})
}

func touches(events []*clientv3.Event, key string) bool {
	for _, ev := range events {
		if string(ev.Kv.Key) == key {
			return true
		}
	}
	return false
}

// applyResponse does what Mirror.watch does with one watch response.
func applyResponse(t *testing.T, snap *kv.Snapshot, spans []span, resp []*clientv3.Event, last int64) *kv.Snapshot {
	t.Helper()
	changes, changed := filterEvents(spans, snap.Revision(), resp)
	if len(changes) != len(changed) {
		t.Fatalf("filterEvents: %d changes but %d changed keys", len(changes), len(changed))
	}
	for i, c := range changes {
		if c.Key != changed[i] {
			t.Fatalf("filterEvents: change of %q listed as %q", c.Key, changed[i])
		}
	}
	if len(changes) == 0 {
		return snap
	}
	return snap.Apply(last, changes)
}
