package kv

import (
	"errors"
	"path"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// ErrNotExist is matched (with errors.Is) by the error of a lookup of a key
// that does not exist.
var ErrNotExist = errors.New("key does not exist")

// KeyError reports a key that does not exist. Its message is the one the
// original confd gives, so templates that test for it keep working.
type KeyError struct {
	Key string
}

func (e *KeyError) Error() string { return "key does not exist: " + e.Key }

// Is makes errors.Is(err, ErrNotExist) true.
func (e *KeyError) Is(target error) bool { return target == ErrNotExist }

// keyRange is the half-open range [lo, hi) of full keys; hi == "" is
// unbounded.
type keyRange struct {
	lo, hi string
}

// View is what one template resource sees of a snapshot: only the keys at or
// below its key roots, with the resource prefix removed from their names.
// For prefix "/production" and keys ["/app"], the etcd key
// "/production/app/a" is seen as "/app/a". A View is as immutable as its
// snapshot and safe for concurrent use, unless it reuses Lists.
type View struct {
	snap   *Snapshot
	prefix string
	ranges []keyRange
	// near is where in the snapshot's base the last lookup ended (see
	// lookup).
	near atomic.Int64
	// lists, when not nil, is where GetAll makes its lists.
	lists *Lists
}

// ReuseLists makes GetAll make its lists in l's memory, which the lists of
// the views that used l before give back with l.Reset. A view that reuses
// lists is not safe for concurrent use.
func (v *View) ReuseLists(l *Lists) { v.lists = l }

// Lists is memory for the lists of GetAll that one view after another
// reuses, as the renders of one template after each change do: a list of
// 100,000 pairs is 3.2 MB, which would otherwise be allocated, zeroed and
// collected each time. The zero value is empty and ready to use; it is not
// safe for concurrent use.
type Lists struct {
	arena []KVPair
	used  int // the lists made since Reset are in arena[:used]
	high  int // arena[used:high] holds pairs of lists before Reset
}

// Reset gives back the memory of every list made since the last Reset:
// the caller no longer uses them. The pairs that the next lists will not
// overwrite are cleared, so that they keep no old values alive.
func (l *Lists) Reset() {
	clear(l.arena[l.used:max(l.high, l.used)])
	l.high, l.used = l.used, 0
}

// make returns an empty list with room for n pairs, in l's memory when l
// is not nil; done gives back the room the list did not use.
func (l *Lists) make(n int) []KVPair {
	if l == nil {
		return make([]KVPair, 0, n)
	}
	if len(l.arena)-l.used < n {
		// The lists already made keep the memory they are in; the
		// next render finds the new memory large enough for all.
		l.arena = make([]KVPair, max(n, 2*len(l.arena)))
		l.used, l.high = 0, 0
	}
	out := l.arena[l.used : l.used : l.used+n]
	l.used += n
	return out
}

// done gives back the room that list, the last made by make, did not use,
// and returns it without room to append to. A list that outgrew its room
// (its bound was short) lives in memory of its own, and its room in l
// stays taken.
func (l *Lists) done(list []KVPair) []KVPair {
	if l == nil {
		return trim(list)
	}
	if c := cap(list); c > 0 && l.used > 0 && &list[:c][c-1] == &l.arena[l.used-1] {
		l.used -= c - len(list)
	}
	return list[:len(list):len(list)]
}

// NormalizeKey returns key with one leading slash, no trailing slash and no
// empty or dot segments: "app/servers/" becomes "/app/servers".
func NormalizeKey(key string) string {
	return path.Clean("/" + key)
}

// View returns the part of s that a resource with the given prefix and keys
// sees. Both are normalised with NormalizeKey; a key "/" with an empty prefix
// sees every key in the snapshot. The key equal to the prefix itself is not
// part of a prefixed view: it has no name below "/".
func (s *Snapshot) View(prefix string, keys []string) *View {
	p := normalizePrefix(prefix)
	return &View{snap: s, prefix: p, ranges: rootRanges(p, Roots(prefix, keys))}
}

func normalizePrefix(prefix string) string {
	p := NormalizeKey(prefix)
	if p == "/" {
		return ""
	}
	return p
}

// Roots returns the etcd keys that a resource with the given prefix and keys
// reads: each key below the prefix, normalised. A source must provide every
// key at or below each root.
func Roots(prefix string, keys []string) []string {
	p := normalizePrefix(prefix)
	roots := make([]string, 0, len(keys))
	for _, k := range keys {
		r := p + NormalizeKey(k)
		if r != "/" {
			r = strings.TrimSuffix(r, "/")
		}
		roots = append(roots, r)
	}
	return roots
}

// All returns a view of every key of s, unprefixed.
func (s *Snapshot) All() *View {
	return &View{snap: s, ranges: []keyRange{{lo: "", hi: ""}}}
}

// rootRanges turns key roots into sorted, disjoint ranges of visible keys:
// each root itself and everything below root + "/". The prefix key itself is
// not below the prefix, so it is never visible in a prefixed view.
func rootRanges(prefix string, roots []string) []keyRange {
	sort.Strings(roots)
	var kept []string
	for _, r := range roots {
		if r == "/" {
			return []keyRange{{lo: "", hi: ""}}
		}
		if !underAny(r, kept) {
			kept = append(kept, r)
		}
	}
	ranges := make([]keyRange, 0, 2*len(kept))
	for _, r := range kept {
		if prefix == "" || r != prefix {
			ranges = append(ranges, keyRange{lo: r, hi: r + "\x00"})
		}
		ranges = append(ranges, keyRange{lo: r + "/", hi: r + "0"})
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].lo < ranges[j].lo })
	return ranges
}

// Revision is the revision of the underlying snapshot.
func (v *View) Revision() int64 { return v.snap.rev }

// full maps a key as the template names it to the etcd key; ok is false when
// no etcd key can have that name.
func (v *View) full(key string) (string, bool) {
	if v.prefix == "" {
		return key, true
	}
	if !strings.HasPrefix(key, "/") {
		return "", false
	}
	return v.prefix + key, true
}

// name maps an etcd key to the key the template sees.
func (v *View) name(full string) string {
	return full[len(v.prefix):]
}

func (v *View) visible(full string) bool {
	i := sort.Search(len(v.ranges), func(i int) bool {
		return v.ranges[i].hi == "" || full < v.ranges[i].hi
	})
	return i < len(v.ranges) && full >= v.ranges[i].lo
}

// scan calls fn, in key order, for every visible key that starts with the
// full-key prefix from. fn may return a key to skip ahead to.
func (v *View) scan(from string, fn func(KVPair) (skipTo string, more bool)) {
	v.scanRanges(from, func(lo, hi string) bool { return v.snap.ascendRange(lo, hi, fn) })
}

// scanRanges calls fn with each visible range of keys that start with
// from, in order, while fn returns true.
func (v *View) scanRanges(from string, fn func(lo, hi string) bool) {
	end := prefixEnd(from)
	for _, r := range v.ranges {
		lo, hi := r.lo, r.hi
		if from > lo {
			lo = from
		}
		if end != "" && (hi == "" || end < hi) {
			hi = end
		}
		if hi != "" && lo >= hi {
			continue
		}
		if !fn(lo, hi) {
			return
		}
	}
}

// unchangedRun returns the pairs that scan(from) visits as a part of the
// snapshot's base, when the view has no prefix (names are keys), they lie
// in one visible range and no change since the base lies among them.
func (v *View) unchangedRun(from string) ([]KVPair, bool) {
	if v.prefix != "" {
		return nil, false
	}
	var run []KVPair
	ok, ranges := false, 0
	v.scanRanges(from, func(lo, hi string) bool {
		ranges++
		run, ok = v.snap.baseRun(lo, hi)
		return true
	})
	return run, ok && ranges == 1
}

// maxInScan returns an upper bound of the number of pairs scan(from) visits.
func (v *View) maxInScan(from string) int {
	n := 0
	v.scanRanges(from, func(lo, hi string) bool {
		n += v.snap.maxInRange(lo, hi)
		return true
	})
	return n
}

// prefixEnd returns the smallest string greater than every string with
// prefix p, or "" when there is none.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// Exists reports whether key exists.
func (v *View) Exists(key string) bool {
	f, ok := v.full(key)
	if !ok || !v.visible(f) {
		return false
	}
	_, ok = v.lookup(f)
	return ok
}

// lookup looks the full key f up in the snapshot, starting near the last
// lookup.
func (v *View) lookup(f string) (string, bool) {
	return lookup(v.snap.base, v.snap.over, f, &v.near)
}

// Get returns the pair of key, or a *KeyError when it does not exist.
func (v *View) Get(key string) (KVPair, error) {
	if f, ok := v.full(key); ok && v.visible(f) {
		if val, ok := v.lookup(f); ok {
			return KVPair{Key: key, Value: val}, nil
		}
	}
	return KVPair{}, &KeyError{Key: key}
}

// GetValue returns the value of key. When key does not exist it returns the
// first default if one is given, and a *KeyError otherwise.
func (v *View) GetValue(key string, defaults ...string) (string, error) {
	p, err := v.Get(key)
	if err != nil {
		if len(defaults) > 0 {
			return defaults[0], nil
		}
		return "", err
	}
	return p.Value, nil
}

// GetAll returns the pairs whose key matches the path.Match pattern, sorted
// by key. "*" does not cross "/". A malformed pattern is an error. The list
// may share memory with the snapshot: callers must not change it (it has
// no room to append to).
func (v *View) GetAll(pattern string) ([]KVPair, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, &PatternError{Pattern: pattern, Err: err}
	}
	out := []KVPair{}
	from, ok := v.patternRange(pattern)
	if !ok {
		return out, nil
	}
	if lit, ok := childPattern(pattern); ok {
		return v.childPairs(from, len(lit)), nil
	}
	match, cheap := matcher(pattern)
	// A name with more slashes than the pattern can match has no match
	// below it either: such subtrees are skipped whole. A character class
	// may match a slash, so it counts as one.
	maxSlashes := strings.Count(pattern, "/") + strings.Count(pattern, "[")
	each := func(fn func(name string, p KVPair)) {
		v.scan(from, func(p KVPair) (string, bool) {
			name := v.name(p.Key)
			if i := nthSlash(name, maxSlashes+1); i >= 0 {
				return p.Key[:len(v.prefix)+i] + "0", true
			}
			if match(name) {
				fn(name, p)
			}
			return "", true
		})
	}
	if cheap {
		// Count first, so that the list is allocated once at its size:
		// a list of 100,000 pairs is 3.2 MB.
		n := 0
		each(func(string, KVPair) { n++ })
		out = v.lists.make(n)
		each(func(name string, p KVPair) {
			out = append(out, KVPair{Key: name, Value: p.Value})
		})
		return v.lists.done(out), nil
	}
	each(func(name string, p KVPair) {
		out = appendDoubling(out, KVPair{Key: name, Value: p.Value})
	})
	return trim(out), nil
}

// childPattern reports whether pattern is the common "literal*", which
// matches the names that start with literal and have no slash after it,
// and returns the literal.
func childPattern(pattern string) (string, bool) {
	lit, ok := strings.CutSuffix(pattern, "*")
	return lit, ok && !strings.ContainsAny(lit, `*?[\`)
}

// childPairs returns the pairs of GetAll for a "literal*" pattern whose
// literal, as a full key, is from; lit is the literal's length. A key with
// a slash after the literal starts a subtree, which is skipped whole.
func (v *View) childPairs(from string, lit int) []KVPair {
	at := len(v.prefix) + lit
	if run, ok := v.unchangedRun(from); ok && len(run) > 0 && !slices.ContainsFunc(run, func(p KVPair) bool {
		return strings.IndexByte(p.Key[at:], '/') >= 0
	}) {
		// Every key of the range matches and is its own name: the
		// snapshot's own pairs are the answer, without a copy.
		return run
	}
	// One pass into a list allocated at a bound of its size: a list of
	// 100,000 pairs is 3.2 MB, so it is neither grown by doubling nor
	// counted first by a second pass. The bound is exact unless the
	// literal has subtrees below it, and then the list is trimmed.
	out := v.lists.make(v.maxInScan(from))
	v.scan(from, func(p KVPair) (string, bool) {
		if i := strings.IndexByte(p.Key[at:], '/'); i >= 0 {
			return p.Key[:at+i] + "0", true
		}
		out = append(out, KVPair{Key: p.Key[len(v.prefix):], Value: p.Value})
		return "", true
	})
	return v.lists.done(out)
}

// matcher returns a function that reports whether a name matches the valid
// pattern, and whether that function is cheap. The common "literal/*"
// pattern is matched without path.Match: GetAll only shows it names that
// start with the literal and have no slash after it, which is all "*" asks.
func matcher(pattern string) (match func(string) bool, cheap bool) {
	if lit, ok := strings.CutSuffix(pattern, "*"); ok && !strings.ContainsAny(lit, `*?[\`) {
		return func(name string) bool {
			return strings.HasPrefix(name, lit) && strings.IndexByte(name[len(lit):], '/') < 0
		}, true
	}
	return func(name string) bool {
		m, _ := path.Match(pattern, name)
		return m
	}, false
}

// nthSlash returns the index of the n-th slash (counted from 1) in s, or -1
// when s has fewer.
func nthSlash(s string, n int) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			if n--; n == 0 {
				return i
			}
		}
	}
	return -1
}

// GetAllValues returns the values of the keys that match pattern, sorted by
// value.
func (v *View) GetAllValues(pattern string) ([]string, error) {
	pairs, err := v.GetAll(pattern)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p.Value
	}
	sort.Strings(out)
	return out, nil
}

// patternRange returns the full-key prefix that every key matching pattern
// starts with: the pattern's literal part before its first meta character.
func (v *View) patternRange(pattern string) (string, bool) {
	lit := pattern
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		lit = pattern[:i]
	}
	if v.prefix != "" && lit == "" {
		return v.prefix, true
	}
	return v.full(lit)
}

// PatternError reports a malformed glob pattern.
type PatternError struct {
	Pattern string
	Err     error
}

func (e *PatternError) Error() string { return "match pattern " + e.Pattern + ": " + e.Err.Error() }

func (e *PatternError) Unwrap() error { return e.Err }

// List returns the sorted, distinct names directly below dir: for keys
// "/app/servers/a" and "/app/servers/b/c", List("/app/servers") is
// ["a", "b"]. A key equal to dir contributes its own base name, as in the
// original confd. List("/") lists the top level.
func (v *View) List(dir string) []string {
	return v.children(dir, false)
}

// ListDir is like List but returns only the names that have keys below them
// (directories), not leaf keys.
func (v *View) ListDir(dir string) []string {
	return v.children(dir, true)
}

func (v *View) children(dir string, dirsOnly bool) []string {
	// The scan finds names nearly in order (a leaf "a" comes before "a-1",
	// and a directory "a" after it), so a sort and a compaction of the
	// list cost less than a set.
	var names []string
	if !dirsOnly && v.Exists(dir) {
		names = append(names, path.Base(dir))
	}
	d := strings.TrimRight(dir, "/")
	if d == "" && !strings.HasPrefix(dir, "/") {
		return sortedUnique(names)
	}
	base, ok := v.full(d)
	if d == "" {
		base, ok = v.prefix, true
	}
	if ok {
		base += "/"
		each := func(add func(string)) {
			v.scan(base, func(p KVPair) (string, bool) {
				rest := p.Key[len(base):]
				i := strings.IndexByte(rest, '/')
				if i < 0 {
					if !dirsOnly {
						add(rest)
					}
					return "", true
				}
				seg := rest[:i]
				if !dirsOnly || seg != "" {
					add(seg)
				}
				return base + seg + "0", true
			})
		}
		// ls of a large directory scans it twice, to count its names and
		// then to list them in a slice of that size: growing the slice
		// would allocate twice its final size or more, and the key count
		// is no bound worth allocating when subtrees hold most keys. lsdir
		// lists few names however many keys lie below them.
		if !dirsOnly && v.maxInScan(base) > countFirst {
			n := 0
			each(func(string) { n++ })
			names = slices.Grow(names, n)
		}
		each(func(name string) { names = appendDoubling(names, name) })
	}
	return sortedUnique(names)
}

// countFirst is the bound on the keys below a directory (maxInScan) above
// which ls counts its names before it lists them.
const countFirst = 1024

// underAny reports whether key is one of roots or below one of them.
// Sorting does not put a root right before the keys below it ("/app-1"
// sorts between "/app" and "/app/x"), so every root is compared.
func underAny(key string, roots []string) bool {
	for _, r := range roots {
		if key == r || strings.HasPrefix(key, r+"/") {
			return true
		}
	}
	return false
}

// sortedUnique sorts names and drops repeats; it never returns nil.
func sortedUnique(names []string) []string {
	if names == nil {
		return []string{}
	}
	slices.Sort(names)
	return trim(slices.Compact(names))
}

// appendDoubling appends x to s and doubles s when it is full: append
// grows a large slice by a quarter at a time, which allocates about five
// times the final slice in all, doubling about twice.
func appendDoubling[T any](s []T, x T) []T {
	if len(s) == cap(s) {
		s = slices.Grow(s, max(len(s), 16))
	}
	return append(s, x)
}

// trim returns s, or a copy of it without the spare capacity when more than
// a fifth of it is spare.
func trim[T any](s []T) []T {
	if cap(s)-len(s) > len(s)/4 {
		return slices.Clone(s)
	}
	return s
}
