package kv

import (
	"github.com/google/btree"
)

// KVPair is one key and its value. Templates use its Key and Value fields.
type KVPair struct {
	Key   string
	Value string
}

// Change is one put (Delete false) or delete (Delete true) of a key.
type Change struct {
	Key    string
	Value  string
	Delete bool
}

// btreeDegree trades node size against depth; 32 keeps 100,000 keys within
// four levels while a copy-on-write node copy stays small.
const btreeDegree = 32

func lessPair(a, b KVPair) bool { return a.Key < b.Key }

// Snapshot is an immutable, sorted set of keys at one revision. The zero value
// is not usable; build one with a Builder, FromMap or Empty.
type Snapshot struct {
	rev  int64
	tree *btree.BTreeG[KVPair]
}

// Empty returns a snapshot without keys at revision rev.
func Empty(rev int64) *Snapshot {
	return &Snapshot{rev: rev, tree: btree.NewG(btreeDegree, lessPair)}
}

// FromMap returns a snapshot holding the keys of m at revision rev.
func FromMap(rev int64, m map[string]string) *Snapshot {
	b := NewBuilder()
	for k, v := range m {
		b.Put(k, v)
	}
	return b.Build(rev)
}

// Builder collects keys for a new snapshot. A later Put of the same key
// replaces the earlier value. A Builder must not be used after Build.
type Builder struct {
	tree *btree.BTreeG[KVPair]
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{tree: btree.NewG(btreeDegree, lessPair)}
}

// Put adds or replaces key.
func (b *Builder) Put(key, value string) {
	b.tree.ReplaceOrInsert(KVPair{Key: key, Value: value})
}

// Len is the number of distinct keys put so far.
func (b *Builder) Len() int { return b.tree.Len() }

// Build returns the snapshot at revision rev.
func (b *Builder) Build(rev int64) *Snapshot {
	s := &Snapshot{rev: rev, tree: b.tree}
	b.tree = nil
	return s
}

// Revision is the etcd revision the snapshot reflects (0 for backends
// without revisions).
func (s *Snapshot) Revision() int64 { return s.rev }

// Len is the number of keys in the snapshot.
func (s *Snapshot) Len() int { return s.tree.Len() }

// Lookup returns the value of key and whether it exists.
func (s *Snapshot) Lookup(key string) (string, bool) {
	p, ok := s.tree.Get(KVPair{Key: key})
	return p.Value, ok
}

// Apply returns a new snapshot at revision rev with changes applied in order.
// s itself is unchanged and stays safe to read concurrently; the new snapshot
// shares every node that the changes do not touch.
func (s *Snapshot) Apply(rev int64, changes []Change) *Snapshot {
	t := s.tree.Clone()
	for _, c := range changes {
		if c.Delete {
			t.Delete(KVPair{Key: c.Key})
			continue
		}
		t.ReplaceOrInsert(KVPair{Key: c.Key, Value: c.Value})
	}
	return &Snapshot{rev: rev, tree: t}
}

// Ascend calls fn for every pair in key order until fn returns false.
func (s *Snapshot) Ascend(fn func(KVPair) bool) {
	s.tree.Ascend(fn)
}

// Pairs returns every pair in key order. It copies; use it for tests and
// small snapshots.
func (s *Snapshot) Pairs() []KVPair {
	out := make([]KVPair, 0, s.tree.Len())
	s.tree.Ascend(func(p KVPair) bool {
		out = append(out, p)
		return true
	})
	return out
}

// ascendRange calls fn for keys in [lo, hi) in order; hi == "" means no upper
// bound. fn returns the key to continue from (to skip ahead) or "" to go on
// with the next key, and false to stop.
func (s *Snapshot) ascendRange(lo, hi string, fn func(KVPair) (skipTo string, more bool)) bool {
	pivot := lo
	for {
		restart := ""
		stopped := false
		visit := func(p KVPair) bool {
			skip, more := fn(p)
			if !more {
				stopped = true
				return false
			}
			if skip != "" && skip > p.Key {
				restart = skip
				return false
			}
			return true
		}
		if hi == "" {
			s.tree.AscendGreaterOrEqual(KVPair{Key: pivot}, visit)
		} else {
			s.tree.AscendRange(KVPair{Key: pivot}, KVPair{Key: hi}, visit)
		}
		if stopped {
			return false
		}
		if restart == "" || (hi != "" && restart >= hi) {
			return true
		}
		pivot = restart
	}
}
