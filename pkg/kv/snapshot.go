package kv

import (
	"slices"
	"strings"
	"sync/atomic"

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

// overDegree trades node size against depth in the tree of changes; 32
// keeps a copy-on-write node copy small.
const overDegree = 32

// minCompact is the fewest changes a snapshot keeps apart from its base
// before they are merged into a new base.
const minCompact = 64

// entry is one change in the tree of changes: a put, or a deletion of a key
// of the base.
type entry struct {
	KVPair
	deleted bool
}

func lessEntry(a, b entry) bool { return a.Key < b.Key }

// Snapshot is an immutable, sorted set of keys at one revision. The zero value
// is not usable; build one with a Builder, FromMap or Empty.
//
// It is a sorted array of pairs (the base), which is compact, quick to build
// from the sorted answers of etcd and quick to scan, and a copy-on-write
// B-tree of the changes made to it since (puts and deletions), which
// snapshots derived from one another share. Once the changes outgrow an
// eighth of the base they are merged into a new base, so a change costs
// O(log n) and, amortised, O(1) more.
type Snapshot struct {
	rev  int64
	base []KVPair             // sorted, distinct keys; never changed
	over *btree.BTreeG[entry] // changes to base; nil when there are none
	n    int                  // keys in the snapshot
}

// Empty returns a snapshot without keys at revision rev.
func Empty(rev int64) *Snapshot {
	return &Snapshot{rev: rev}
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
// replaces the earlier value. Keys put in ascending order, as etcd returns
// them, cost no sorting. A Builder must not be used after Build.
type Builder struct {
	// blocks hold the pairs in the order put: blocks, rather than one
	// slice grown by doubling, so that the pairs are copied once, by
	// Build, into a slice of their exact size (100,000 pairs are 3.2 MB).
	blocks [][]KVPair
	n      int
	last   string // the key put last
	sorted bool   // pairs are in strictly ascending key order
}

// maxBlock is the size of the largest block of a Builder, in pairs.
const maxBlock = 8192

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{sorted: true}
}

// Put adds or replaces key.
func (b *Builder) Put(key, value string) {
	if b.n > 0 && key <= b.last {
		b.sorted = false
	}
	last := len(b.blocks) - 1
	if last < 0 || len(b.blocks[last]) == cap(b.blocks[last]) {
		size := 16
		if last >= 0 {
			size = min(2*cap(b.blocks[last]), maxBlock)
		}
		b.blocks = append(b.blocks, make([]KVPair, 0, size))
		last++
	}
	b.blocks[last] = append(b.blocks[last], KVPair{Key: key, Value: value})
	b.n++
	b.last = key
}

// Len is the number of distinct keys put so far.
func (b *Builder) Len() int {
	b.normalize()
	return b.n
}

// normalize joins the blocks into one, sorts the pairs by key and keeps
// the last put of each key.
func (b *Builder) normalize() {
	if len(b.blocks) > 1 {
		pairs := make([]KVPair, 0, b.n)
		for _, bl := range b.blocks {
			pairs = append(pairs, bl...)
		}
		b.blocks = [][]KVPair{pairs}
	}
	if b.sorted || len(b.blocks) == 0 {
		return
	}
	pairs := b.blocks[0]
	slices.SortStableFunc(pairs, func(x, y KVPair) int { return strings.Compare(x.Key, y.Key) })
	out := pairs[:0]
	for i, p := range pairs {
		if i+1 < len(pairs) && pairs[i+1].Key == p.Key {
			continue // a later put of the same key wins
		}
		out = append(out, p)
	}
	clear(pairs[len(out):])
	b.blocks[0], b.n, b.sorted = out, len(out), true
}

// Build returns the snapshot at revision rev.
func (b *Builder) Build(rev int64) *Snapshot {
	b.normalize()
	var base []KVPair
	if len(b.blocks) == 1 {
		base = trim(b.blocks[0])
	}
	b.blocks = nil
	return &Snapshot{rev: rev, base: slices.Clip(base), n: len(base)}
}

// Revision is the etcd revision the snapshot reflects (0 for backends
// without revisions).
func (s *Snapshot) Revision() int64 { return s.rev }

// Len is the number of keys in the snapshot.
func (s *Snapshot) Len() int { return s.n }

// Lookup returns the value of key and whether it exists.
func (s *Snapshot) Lookup(key string) (string, bool) {
	return lookup(s.base, s.over, key, nil)
}

// lookup returns the value of key in the changes over, or else in base.
//
// near, when not nil, holds the index in base where the previous lookup
// ended, for lookups in ascending order of key, as a template makes that
// looks up each name that ls gave: a key at that index or the next one is
// found with a comparison or two instead of a binary search.
func lookup(base []KVPair, over *btree.BTreeG[entry], key string, near *atomic.Int64) (string, bool) {
	if over != nil {
		if e, ok := over.Get(entry{KVPair: KVPair{Key: key}}); ok {
			return e.Value, !e.deleted
		}
	}
	i := -1
	if near != nil {
		i = int(near.Load())
	}
	switch {
	case i >= 0 && i < len(base) && base[i].Key == key:
		return base[i].Value, true
	case i >= 0 && i+1 < len(base) && base[i].Key < key && key <= base[i+1].Key:
		i++
	default:
		i = search(base, key)
	}
	if i < len(base) && base[i].Key == key {
		if near != nil {
			near.Store(int64(i))
		}
		return base[i].Value, true
	}
	return "", false
}

// search returns the index of the first pair of base whose key is key or
// after it.
func search(base []KVPair, key string) int {
	// sort.Search, with the comparison inline rather than a call per step.
	lo, hi := 0, len(base)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if base[mid].Key < key {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// baseRun returns the pairs of [lo, hi) (hi "" for no bound) as a part of
// the base that cannot be appended to, when no change lies in that range.
func (s *Snapshot) baseRun(lo, hi string) ([]KVPair, bool) {
	if s.over != nil {
		changed := false
		s.over.AscendGreaterOrEqual(entry{KVPair: KVPair{Key: lo}}, func(e entry) bool {
			changed = hi == "" || e.Key < hi
			return false
		})
		if changed {
			return nil, false
		}
	}
	i, j := s.baseRange(lo, hi)
	return s.base[i:j:j], true
}

// baseRange returns the indexes of the base's pairs in [lo, hi) (hi ""
// for no bound): base[i:j], with i <= j.
func (s *Snapshot) baseRange(lo, hi string) (i, j int) {
	i, j = search(s.base, lo), len(s.base)
	if hi != "" {
		j = search(s.base, hi)
	}
	return i, max(i, j)
}

// maxInRange returns an upper bound of the number of keys in [lo, hi) (hi
// "" for no bound): the keys of the base in range plus, when there are
// fewer changes than those, every change, and else the puts among the
// changes in range, each of which adds a key at most. The bound is then at
// most twice the keys of the base in range, or counted at the cost of a
// scan of the changes in range, which a scan of the range visits too.
func (s *Snapshot) maxInRange(lo, hi string) int {
	i, j := s.baseRange(lo, hi)
	n := j - i
	if s.over == nil {
		return n
	}
	if s.over.Len() <= n {
		return n + s.over.Len()
	}
	s.over.AscendGreaterOrEqual(entry{KVPair: KVPair{Key: lo}}, func(e entry) bool {
		if hi != "" && e.Key >= hi {
			return false
		}
		if !e.deleted {
			n++
		}
		return true
	})
	return n
}

// Apply returns a new snapshot at revision rev with changes applied in order.
// s itself is unchanged and stays safe to read concurrently; the new snapshot
// shares the base and every node of the changes that the new changes do not
// touch.
func (s *Snapshot) Apply(rev int64, changes []Change) *Snapshot {
	var over *btree.BTreeG[entry]
	if s.over != nil {
		over = s.over.Clone()
	} else {
		over = btree.NewG(overDegree, lessEntry)
	}
	n := s.n
	for _, c := range changes {
		_, exists := lookup(s.base, over, c.Key, nil)
		if !c.Delete {
			if !exists {
				n++
			}
			over.ReplaceOrInsert(entry{KVPair: KVPair{Key: c.Key, Value: c.Value}})
			continue
		}
		if !exists {
			continue
		}
		n--
		if _, inBase := lookup(s.base, nil, c.Key, nil); inBase {
			over.ReplaceOrInsert(entry{KVPair: KVPair{Key: c.Key}, deleted: true})
		} else {
			over.Delete(entry{KVPair: KVPair{Key: c.Key}})
		}
	}
	next := &Snapshot{rev: rev, base: s.base, over: over, n: n}
	if over.Len() > max(minCompact, len(s.base)/8) {
		next.compact()
	}
	return next
}

// compact merges the changes into a new base.
func (s *Snapshot) compact() {
	base := make([]KVPair, 0, s.n)
	s.Ascend(func(p KVPair) bool {
		base = append(base, p)
		return true
	})
	s.base, s.over = base, nil
}

// Ascend calls fn for every pair in key order until fn returns false.
func (s *Snapshot) Ascend(fn func(KVPair) bool) {
	s.ascendRange("", "", func(p KVPair) (string, bool) { return "", fn(p) })
}

// Pairs returns every pair in key order. It copies; use it for tests and
// small snapshots.
func (s *Snapshot) Pairs() []KVPair {
	out := make([]KVPair, 0, s.n)
	s.Ascend(func(p KVPair) bool {
		out = append(out, p)
		return true
	})
	return out
}

// ascendRange calls fn for keys in [lo, hi) in order; hi == "" means no upper
// bound. fn returns the key to continue from (to skip ahead) or "" to go on
// with the next key, and false to stop. It merges the base with the
// changes: a change replaces or hides the pair of the base with its key.
func (s *Snapshot) ascendRange(lo, hi string, fn func(KVPair) (skipTo string, more bool)) bool {
	inRange := func(key string) bool { return hi == "" || key < hi }
	pivot := lo
	for {
		restart := ""
		stopped := false
		// visit passes p to fn and reports whether this pass goes on.
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
		i, baseEnd := s.baseRange(pivot, hi)
		// baseUpTo visits the pairs of the base in range before the key
		// limit (with limited) and reports whether the pass goes on. The
		// end of the range is found once by binary search; the limits,
		// the next changed keys, are usually a few keys on.
		baseUpTo := func(limit string, limited bool) bool {
			for ; i < baseEnd; i++ {
				p := s.base[i]
				if limited && p.Key >= limit {
					return true
				}
				if !visit(p) {
					return false
				}
			}
			return true
		}
		more := true
		if s.over != nil {
			s.over.AscendGreaterOrEqual(entry{KVPair: KVPair{Key: pivot}}, func(e entry) bool {
				if !inRange(e.Key) {
					return false
				}
				if more = baseUpTo(e.Key, true); !more {
					return false
				}
				if i < len(s.base) && s.base[i].Key == e.Key {
					i++ // replaced or deleted by e
				}
				if !e.deleted {
					more = visit(e.KVPair)
				}
				return more
			})
		}
		if more {
			baseUpTo("", false)
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
