// Package kv holds an immutable, sorted snapshot of keys and values taken at
// one etcd revision, and the lookups that templates use on it: get, gets,
// getv, getvs, ls, lsdir and exists.
//
// A Snapshot never changes once built. A new snapshot for a later revision is
// derived from an older one with Apply, which shares all untouched structure,
// so the cost of a change is proportional to the change and not to the size
// of the keyspace.
//
// Lookups are indexed: exact keys are found in logarithmic time, and globs
// with a literal part, ls and lsdir scan only the range of keys below that
// literal part.
//
// kv does no I/O. It may import only the standard library and
// github.com/google/btree.
package kv
