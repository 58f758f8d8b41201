// Package processor turns template resources into files: for each resource it
// takes a snapshot of its keys, renders its template and hands the result to
// the file syncer. It owns the run modes (one-shot now; watch and interval
// build on the same per-resource step) and every goroutine it starts.
//
// processor declares the small interfaces it needs (Source, Syncer); the
// etcd client, the local backends and filesync satisfy them.
//
// It may import the standard library, logrus, and pkg/resource, pkg/kv,
// pkg/render and pkg/filesync.
package processor
