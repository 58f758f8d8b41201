package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/etcdconfd/confd/pkg/kv"
)

// Store is what templates read keys from. *kv.View satisfies it.
type Store interface {
	// Get returns the pair of key or an error naming the missing key.
	Get(key string) (kv.KVPair, error)
	// GetValue returns the value of key, the first default when key is
	// missing and a default is given, or an error naming the missing key.
	GetValue(key string, defaults ...string) (string, error)
	// GetAll returns the pairs whose key matches a path.Match pattern,
	// sorted by key. The list is read, never changed.
	GetAll(pattern string) ([]kv.KVPair, error)
	// GetAllValues returns the values of the keys that match pattern,
	// sorted by value.
	GetAllValues(pattern string) ([]string, error)
	// List returns the sorted names directly below dir.
	List(dir string) []string
	// ListDir returns the sorted names directly below dir that have keys
	// below them.
	ListDir(dir string) []string
	// Exists reports whether key exists.
	Exists(key string) bool
}

var _ Store = (*kv.View)(nil)

// Options are the parts of the outside world that template functions
// read. The zero value uses the real ones.
type Options struct {
	// Resolver answers lookupIP, lookupIPV4, lookupIPV6 and lookupSRV;
	// nil is net.DefaultResolver.
	Resolver *net.Resolver
	// Getenv answers getenv and sprig's env and expandenv; nil is
	// os.LookupEnv.
	Getenv func(key string) (value string, ok bool)
	// Now answers datetime and sprig's now; nil is time.Now.
	Now func() time.Time
	// Stat answers fileExists; nil is os.Stat.
	Stat func(name string) (fs.FileInfo, error)
}

func (o Options) withDefaults() Options {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Stat == nil {
		o.Stat = os.Stat
	}
	return o
}

// Template is a parsed template. It is immutable once parsed and safe for
// concurrent use.
type Template struct {
	name string
	opts Options
	tmpl *template.Template
	// clones holds idle *clone values. Each execution takes one (or
	// makes one), binds its store and context, and puts it back, so the
	// function map is copied once per concurrent execution rather than
	// once per execution.
	clones sync.Pool
	// sizeHint is the length of the last output, used to size the next
	// output buffer in one allocation.
	sizeHint atomic.Int64
	// prog is the template compiled for the fast path (see fast.go), or
	// nil when it uses what the fast path does not handle.
	prog *program
	// slowRuns counts the executions in a row in which the fast path met
	// a value it does not handle; at maxSlowRuns, fastOff turns it off,
	// so that a template whose data the fast path cannot take is not
	// executed twice every time.
	slowRuns atomic.Int32
	fastOff  atomic.Bool
	// funcs are the functions that do not depend on a binding.
	funcs template.FuncMap
}

// clone is a copy of the parsed template whose store and DNS functions
// read its binding.
type clone struct {
	tmpl *template.Template
	b    *binding
	// fns are the functions the fast path calls, indexed like
	// prog.funcs, the store and DNS ones bound to b.
	fns []any
}

// ParseFile reads and parses the template file at path. The path names the
// template in error messages, which also give the line.
func ParseFile(path string, opts Options) (*Template, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	return Parse(path, string(text), opts)
}

// Parse parses text as a template called name. Parse errors come from
// text/template and read "template: NAME:LINE: ...".
func Parse(name, text string, opts Options) (*Template, error) {
	opts = opts.withDefaults()
	funcs := funcMap(opts)
	// The functions that read the store or DNS are bound per clone; these
	// only make their names known to the parser.
	maps.Copy(funcs, (&binding{}).funcs())
	tmpl, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		return nil, err
	}
	t := &Template{name: name, opts: opts, tmpl: tmpl, funcs: funcs}
	if prog, err := compile(tmpl, funcs); err == nil {
		t.prog = prog
	}
	t.sizeHint.Store(int64(len(text)))
	return t, nil
}

// Name is the name the template was parsed with.
func (t *Template) Name() string { return t.name }

func (t *Template) getClone() (*clone, error) {
	if c, ok := t.clones.Get().(*clone); ok {
		return c, nil
	}
	tmpl, err := t.tmpl.Clone()
	if err != nil {
		return nil, err
	}
	b := &binding{resolver: t.opts.Resolver}
	bound := b.funcs()
	tmpl.Funcs(bound)
	c := &clone{tmpl: tmpl, b: b}
	if t.prog != nil {
		c.fns = make([]any, len(t.prog.funcs))
		for i, name := range t.prog.funcs {
			if fn, ok := bound[name]; ok {
				c.fns[i] = fn
			} else {
				c.fns[i] = t.funcs[name]
			}
		}
	}
	return c, nil
}

// Execute renders the template against s and returns the output. ctx
// bounds DNS lookups and stops listings once it is done. Errors from the
// template name the template, line and column; an error from a function
// wraps that function's error, so errors.Is(err, kv.ErrNotExist) tells a
// missing key. A panic inside the template or one of its functions is
// returned as an error.
func (t *Template) Execute(ctx context.Context, s Store) ([]byte, error) {
	chunks, err := t.ExecuteChunks(ctx, s, nil)
	if err != nil {
		return nil, err
	}
	switch len(chunks) {
	case 0:
		return []byte{}, nil
	case 1:
		return chunks[0], nil
	}
	return bytes.Join(chunks, nil), nil
}

// ExecuteChunks is Execute with the output in the pieces it was written
// in, which a large output is (up to 1 MB each): a caller that writes
// them out one after another spares a copy of the whole output. A render
// no larger than the one before comes in one piece.
//
// With mem, the output is written into the memory that mem holds from
// the previous call with it, and mem then holds the memory of this
// output: the chunks are valid until the next call with mem. A caller
// that renders again and again, such as a daemon after each change,
// allocates no new memory for output no larger than the last one.
func (t *Template) ExecuteChunks(ctx context.Context, s Store, mem *Buffer) (out [][]byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("execute template %s: %w", t.name, err)
	}
	c, err := t.getClone()
	if err != nil {
		return nil, fmt.Errorf("execute template %s: %w", t.name, err)
	}
	c.b.ctx, c.b.store = ctx, s

	hint := t.sizeHint.Load()
	newWriter := func() chunkWriter {
		w := chunkWriter{first: int(hint + hint/8)}
		if mem != nil {
			// A copy: grow takes blocks out of it, and a second run
			// after the fast path gave up starts from all of them.
			w.spare = slices.Clone(mem.blocks)
		}
		return w
	}
	buf := newWriter()
	defer func() {
		if r := recover(); r != nil {
			// The clone is dropped rather than reused.
			out, err = nil, fmt.Errorf("execute template %s: panic: %v", t.name, r)
		}
	}()
	if !t.tryFast(c, &buf) {
		buf = newWriter()
		err = c.tmpl.Execute(&buf, nil)
	}
	c.b.ctx, c.b.store = nil, nil
	t.clones.Put(c)
	if mem != nil {
		mem.blocks = buf.blocks()
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("execute template %s: %w", t.name, err)
	}
	t.sizeHint.Store(int64(buf.n))
	return buf.chunks(), nil
}

// Buffer is memory that renders of a template reuse for their output
// (see ExecuteChunks). Its zero value is empty and ready to use. It is
// not safe for concurrent use.
type Buffer struct {
	blocks [][]byte // at their full capacity
}

// maxSlowRuns is how many executions in a row may meet a value the fast
// path does not handle before it is no longer tried for the template.
const maxSlowRuns = 3

// tryFast runs the fast path of c into buf, unless the template has none
// or it was turned off, and reports whether it succeeded. When it did
// not, what it wrote is to be thrown away and text/template run instead.
func (t *Template) tryFast(c *clone, buf *chunkWriter) bool {
	if t.prog == nil || t.fastOff.Load() {
		return false
	}
	err := t.runFast(c, buf)
	switch {
	case err == nil:
		t.slowRuns.Store(0)
	case errors.Is(err, errSlow):
		if t.slowRuns.Add(1) >= maxSlowRuns {
			t.fastOff.Store(true)
		}
	}
	return err == nil
}

// runFast executes the fast path of c into buf. An error (a failing
// function, a panic, or errSlow for a value it does not handle) means
// that text/template is to run instead, which gives the same output or
// text/template's own error. A panic counts as errSlow.
func (t *Template) runFast(c *clone, buf *chunkWriter) (err error) {
	defer func() {
		if recover() != nil {
			err = errSlow
		}
	}()
	return t.prog.run(buf, c.fns)
}

// maxChunk bounds the chunks of a chunkWriter, and so the memory it
// allocates but does not use.
const maxChunk = 1 << 20

// chunkWriter collects output in chunks, which ExecuteChunks hands over as
// they are. Unlike a bytes.Buffer, which copies all it holds each time it
// doubles and may end up twice as large as its content, it never copies
// what it holds and allocates at most maxChunk more than it holds: a
// render of 4 MB takes about 4 MB instead of up to 8 MB, plus the copies.
// Output that fits its first chunk, as a render no larger than the one
// before does, comes in one chunk.
//
// A write that fits the current chunk changes only integers, so that it
// needs no write barrier while the garbage collector runs.
type chunkWriter struct {
	first int      // size of the first chunk
	full  [][]byte // the chunks filled before cur
	cur   []byte   // the chunk being filled, at its full length
	pos   int      // bytes used in cur
	n     int      // bytes written
	// spare is memory to fill before any is allocated, at its full
	// capacity.
	spare [][]byte
}

// grow starts a chunk for at least the next n bytes.
func (w *chunkWriter) grow(n int) {
	size := max(w.first, 64)
	if w.cur != nil {
		w.full = append(w.full, w.cur[:w.pos])
		size = min(max(2*len(w.cur), n), max(maxChunk, n))
	}
	// A spare block is taken when the write fits, and the first one only
	// when the output is expected to fit too; a render that outgrew the
	// spare memory allocates its first chunk at the new size.
	need := n
	if w.cur == nil {
		need = max(n, w.first*8/9)
	}
	w.pos = 0
	for i, b := range w.spare {
		if cap(b) >= need {
			w.spare = slices.Delete(w.spare, i, i+1)
			w.cur = b[:cap(b)]
			return
		}
	}
	w.cur = make([]byte, size)
}

// blocks returns the memory of the chunks written, at its full capacity.
// Spare memory not used is left out, so that a Buffer holds no more than
// the memory of the last output.
func (w *chunkWriter) blocks() [][]byte {
	out := make([][]byte, 0, len(w.full)+1)
	for _, c := range w.full {
		out = append(out, c[:cap(c)])
	}
	if w.cur != nil {
		out = append(out, w.cur[:cap(w.cur)])
	}
	return out
}

// chunks returns what was written, in order. Writes after it start a
// new chunk.
func (w *chunkWriter) chunks() [][]byte {
	if w.pos > 0 {
		w.full = append(w.full, w.cur[:w.pos:w.pos])
	}
	w.cur, w.pos = nil, 0
	return w.full
}

func (w *chunkWriter) Write(p []byte) (int, error) { return appendChunks(w, p) }

// WriteString writes s without first copying it into a []byte.
func (w *chunkWriter) WriteString(s string) (int, error) { return appendChunks(w, s) }

func appendChunks[T string | []byte](w *chunkWriter, p T) (int, error) {
	n := len(p)
	if n <= len(w.cur)-w.pos {
		copy(w.cur[w.pos:], p)
		w.pos += n
		w.n += n
		return n, nil
	}
	for len(p) > 0 {
		if w.pos == len(w.cur) {
			w.grow(len(p))
		}
		k := copy(w.cur[w.pos:], p)
		w.pos += k
		p = p[k:]
	}
	w.n += n
	return n, nil
}
