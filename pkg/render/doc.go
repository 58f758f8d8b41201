// Package render turns a template and a key store into bytes.
//
// A Template is parsed once with Parse or ParseFile and executed any number
// of times, concurrently if need be, against a Store (a *kv.View in
// production). render owns the template function map: the functions of the
// original confd with the same names, arguments and results, and then every
// function of sprig v3 whose name confd does not already use. Where the
// original confd was plainly wrong (reverse changing its argument in place,
// division by zero panicking, a failed DNS lookup silently yielding no
// records, ...) render is right; docs/template-functions.md lists each case.
//
// Templates are executed by a compiled fast path (fast.go) where they use
// only what it knows, which covers the templates confd users write; it
// gives text/template's output byte for byte, and falls back to
// text/template for anything else and for every error, so that errors read
// as text/template's. Tests compare both paths on fixed and generated
// templates (FuzzFastPath).
//
// render writes no files and runs no commands; the only outside world its
// functions reach is the environment, the clock, file metadata (fileExists)
// and DNS (lookupIP, lookupSRV), each of which can be replaced through
// Options.
//
// render may import only the standard library, pkg/kv and
// github.com/Masterminds/sprig/v3.
package render
