package render

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"unsafe"

	"github.com/etcdconfd/confd/pkg/kv"
)

// The fast path executes the templates confd users write (ranges over
// gets and ls, field access on pairs, calls of string functions, if, with,
// variables) without text/template's reflection: the parse tree is
// compiled once into closures that pass values as plain interfaces and
// call the common function signatures directly. It reproduces
// text/template's output exactly for what it handles and gives up on
// anything else: a construct it does not know makes compile fail (the
// template is then always executed by text/template), and a value it does
// not know at run time, or any error, makes the execution return errSlow
// or that error, after which Execute runs text/template instead. The
// fallback also gives every error text/template's exact message.

// errSlow reports that the fast path met a value it does not handle.
var errSlow = errors.New("render: not handled by the fast path")

// ctrl is how a statement ends: normally, or by break or continue.
type ctrl uint8

const (
	ctrlNext ctrl = iota
	ctrlBreak
	ctrlContinue
)

// frame is the state of one fast execution.
type frame struct {
	w    *chunkWriter
	vars []any
	fns  []any // the functions of the executing clone, by id
	// text is where the strings printf joins are made; see bytes.
	text []byte
}

// textBlock is the size of the blocks a frame makes joined strings in, and
// maxBlockText the longest string it makes there.
const (
	textBlock    = 32 << 10
	maxBlockText = 1 << 10
)

// bytes returns n bytes for a string to be built in and then never
// changed. A template that joins a key for every element it ranges over,
// {{getv (printf "/app/servers/%s" .)}}, makes as many small strings as
// there are keys; made in shared blocks, they are a few allocations the
// collector need not scan instead of one each. A string that outlives the
// execution keeps its block alive, no more.
func (f *frame) bytes(n int) []byte {
	if n > maxBlockText {
		return make([]byte, n)
	}
	if len(f.text)+n > cap(f.text) {
		f.text = make([]byte, 0, textBlock)
	}
	b := f.text[len(f.text) : len(f.text)+n : len(f.text)+n]
	f.text = f.text[:len(f.text)+n]
	return b
}

type (
	stmt func(f *frame, dot any) (ctrl, error)
	expr func(f *frame, dot any) (any, error)
	// cmdExpr evaluates one command of a pipeline; final is the value
	// of the command before it, or missing.
	cmdExpr func(f *frame, dot, final any) (any, error)
)

// A *kv.KVPair stands for the pair it points to, and a *string for the
// string: the fast path gives the elements of a []kv.KVPair and of a
// []string by reference and reads, prints and tests them as the element
// itself. Before a pointer reaches a function it is replaced by the
// element (see evalArgs), so functions see what text/template gives them.

// missingType marks the absent final argument of a pipeline's first
// command.
type missingType struct{}

var missing any = missingType{}

// program is a compiled template.
type program struct {
	root  stmt
	nvars int
	// funcs names the functions the template calls, by id.
	funcs []string
}

// run executes p with the functions fns (indexed like p.funcs) into w.
func (p *program) run(w *chunkWriter, fns []any) error {
	f := &frame{w: w, vars: make([]any, p.nvars), fns: fns}
	_, err := p.root(f, nil)
	return err
}

// errNoFast is returned by compile for a template the fast path does not
// handle.
var errNoFast = errors.New("template not handled by the fast path")

// compiler holds the state of one compilation.
type compiler struct {
	funcs   template.FuncMap // every function the template may call
	ids     map[string]int
	names   []string
	scope   []scopeVar // visible variables, innermost last
	nvars   int
	inRange int
}

type scopeVar struct {
	name string
	slot int
}

// compile compiles the root of tmpl, whose functions are funcs. It fails
// with errNoFast when the template uses what the fast path does not
// handle, such as {{template}} or {{define}}.
func compile(tmpl *template.Template, funcs template.FuncMap) (p *program, err error) {
	if tmpl.Tree == nil || tmpl.Root == nil || len(tmpl.Templates()) > 1 {
		return nil, errNoFast
	}
	c := &compiler{funcs: funcs, ids: map[string]int{}}
	c.push("$") // the data, nil in every execution
	root, err := c.list(tmpl.Root)
	if err != nil {
		return nil, err
	}
	return &program{root: root, nvars: c.nvars, funcs: c.names}, nil
}

func (c *compiler) push(name string) int {
	slot := c.nvars
	c.nvars++
	c.scope = append(c.scope, scopeVar{name: name, slot: slot})
	return slot
}

func (c *compiler) lookup(name string) (int, error) {
	for i := len(c.scope) - 1; i >= 0; i-- {
		if c.scope[i].name == name {
			return c.scope[i].slot, nil
		}
	}
	return 0, errNoFast
}

func (c *compiler) list(l *parse.ListNode) (stmt, error) {
	if l == nil {
		return func(*frame, any) (ctrl, error) { return ctrlNext, nil }, nil
	}
	stmts := make([]stmt, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		s, err := c.node(n)
		if err != nil {
			return nil, err
		}
		if s != nil {
			stmts = append(stmts, s)
		}
	}
	if len(stmts) == 1 {
		return stmts[0], nil
	}
	return func(f *frame, dot any) (ctrl, error) {
		for _, s := range stmts {
			if c, err := s(f, dot); err != nil || c != ctrlNext {
				return c, err
			}
		}
		return ctrlNext, nil
	}, nil
}

func (c *compiler) node(n parse.Node) (stmt, error) {
	switch n := n.(type) {
	case *parse.TextNode:
		text := n.Text
		return func(f *frame, _ any) (ctrl, error) {
			_, err := f.w.Write(text)
			return ctrlNext, err
		}, nil
	case *parse.CommentNode:
		return nil, nil
	case *parse.ActionNode:
		// The string evaluator first: it declares nothing, so it cannot
		// see a variable the pipeline declares.
		sp := c.stringPipe(n.Pipe)
		pipe, err := c.pipeline(n.Pipe)
		if err != nil {
			return nil, err
		}
		if len(n.Pipe.Decl) > 0 {
			return func(f *frame, dot any) (ctrl, error) {
				_, err := pipe(f, dot)
				return ctrlNext, err
			}, nil
		}
		if sp != nil {
			// {{.Key}}, {{base .Key}} and the like write their string
			// without boxing it.
			return func(f *frame, dot any) (ctrl, error) {
				s, ok, err := sp(f, dot)
				if err != nil {
					return ctrlNext, err
				}
				if ok {
					_, err := f.w.WriteString(s)
					return ctrlNext, err
				}
				v, err := pipe(f, dot)
				if err != nil {
					return ctrlNext, err
				}
				return ctrlNext, printValue(f.w, v)
			}, nil
		}
		return func(f *frame, dot any) (ctrl, error) {
			v, err := pipe(f, dot)
			if err != nil {
				return ctrlNext, err
			}
			return ctrlNext, printValue(f.w, v)
		}, nil
	case *parse.IfNode:
		return c.ifOrWith(false, n.Pipe, n.List, n.ElseList)
	case *parse.WithNode:
		return c.ifOrWith(true, n.Pipe, n.List, n.ElseList)
	case *parse.RangeNode:
		return c.rangeNode(n)
	case *parse.ListNode:
		return c.list(n)
	case *parse.BreakNode:
		if c.inRange == 0 {
			return nil, errNoFast
		}
		return func(*frame, any) (ctrl, error) { return ctrlBreak, nil }, nil
	case *parse.ContinueNode:
		if c.inRange == 0 {
			return nil, errNoFast
		}
		return func(*frame, any) (ctrl, error) { return ctrlContinue, nil }, nil
	}
	return nil, errNoFast // {{template}} and anything newer
}

// ifOrWith compiles if and with. Variables declared by the pipeline are
// seen by both branches; those declared in the first branch are not seen
// by the else branch, whose references to them then fail to compile (in
// text/template they fail at run time).
func (c *compiler) ifOrWith(with bool, p *parse.PipeNode, list, elseList *parse.ListNode) (stmt, error) {
	mark := len(c.scope)
	defer func() { c.scope = c.scope[:mark] }()
	pipe, err := c.pipeline(p)
	if err != nil {
		return nil, err
	}
	afterPipe := len(c.scope)
	body, err := c.list(list)
	if err != nil {
		return nil, err
	}
	c.scope = c.scope[:afterPipe]
	var elseBody stmt
	if elseList != nil {
		if elseBody, err = c.list(elseList); err != nil {
			return nil, err
		}
	}
	return func(f *frame, dot any) (ctrl, error) {
		v, err := pipe(f, dot)
		if err != nil {
			return ctrlNext, err
		}
		t, err := isTrue(v)
		if err != nil {
			return ctrlNext, err
		}
		switch {
		case t && with:
			return body(f, v)
		case t:
			return body(f, dot)
		case elseBody != nil:
			return elseBody(f, dot)
		}
		return ctrlNext, nil
	}, nil
}

// rangeNode compiles range over the lists, maps and integers templates
// see from confd's functions.
func (c *compiler) rangeNode(r *parse.RangeNode) (stmt, error) {
	mark := len(c.scope)
	defer func() { c.scope = c.scope[:mark] }()
	decl := r.Pipe.Decl
	if len(decl) > 2 {
		return nil, errNoFast
	}
	value, err := c.commands(r.Pipe.Cmds)
	if err != nil {
		return nil, err
	}
	// The variables hold the pipeline's value until the first iteration
	// sets them, as in text/template.
	slots := make([]int, len(decl))
	for i, d := range decl {
		if len(d.Ident) != 1 {
			return nil, errNoFast
		}
		if r.Pipe.IsAssign {
			if slots[i], err = c.lookup(d.Ident[0]); err != nil {
				return nil, err
			}
		} else {
			slots[i] = c.push(d.Ident[0])
		}
	}
	afterDecl := len(c.scope)
	c.inRange++
	body, err := c.list(r.List)
	c.inRange--
	if err != nil {
		return nil, err
	}
	c.scope = c.scope[:afterDecl]
	var elseBody stmt
	if r.ElseList != nil {
		if elseBody, err = c.list(r.ElseList); err != nil {
			return nil, err
		}
	}
	// elemSlot and indexSlot receive each element and its index (or key).
	elemSlot, indexSlot := -1, -1
	switch {
	case len(slots) == 1:
		elemSlot = slots[0]
	case len(slots) == 2:
		indexSlot, elemSlot = slots[0], slots[1]
	}
	iterate := func(f *frame, index, elem any) (bool, error) {
		// The index first: in {{range $i, $i = ...}} the element wins.
		if indexSlot >= 0 {
			f.vars[indexSlot] = index
		}
		if elemSlot >= 0 {
			f.vars[elemSlot] = elem
		}
		c, err := body(f, elem)
		return c == ctrlBreak, err
	}
	return func(f *frame, dot any) (ctrl, error) {
		v, err := value(f, dot)
		if err != nil {
			return ctrlNext, err
		}
		for _, s := range slots {
			f.vars[s] = v
		}
		ran, err := rangeOver(f, v, indexSlot >= 0, iterate)
		if err != nil || ran || elseBody == nil {
			return ctrlNext, err
		}
		// A break in the else branch ends this range, as text/template's
		// recovery of it covers the branch; a continue goes on outward.
		c, err := elseBody(f, dot)
		if c == ctrlBreak {
			c = ctrlNext
		}
		return c, err
	}, nil
}

// rangeOver calls iterate with each element of v, until it reports
// break, and reports whether there was an element.
func rangeOver(f *frame, v any, twoVars bool, iterate func(f *frame, index, elem any) (bool, error)) (bool, error) {
	// The index is boxed only when a variable receives it.
	idx := func(i int) any { return nil }
	key := func(k string) any { return nil }
	if twoVars {
		idx = func(i int) any { return i }
		key = func(k string) any { return k }
	}
	switch v := v.(type) {
	case nil:
		return false, nil
	case []kv.KVPair:
		// The elements are passed by reference, which spares boxing
		// each one; see pairRef.
		for i := range v {
			if stop, err := iterate(f, idx(i), &v[i]); stop || err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	case []string:
		// By reference too, which spares boxing each string.
		for i := range v {
			if stop, err := iterate(f, idx(i), &v[i]); stop || err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	case []int:
		for i := range v {
			if stop, err := iterate(f, idx(i), v[i]); stop || err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	case []any:
		for i := range v {
			if v[i] == nil {
				return false, errSlow // text/template prints a nil element as <nil>
			}
			if stop, err := iterate(f, idx(i), v[i]); stop || err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	case map[string]string:
		for _, k := range slices.Sorted(mapKeys(v)) {
			if stop, err := iterate(f, key(k), v[k]); stop || err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	case map[string]any:
		keys := slices.Sorted(mapKeys(v))
		for _, k := range keys {
			if v[k] == nil {
				return false, errSlow
			}
		}
		for _, k := range keys {
			if stop, err := iterate(f, key(k), v[k]); stop || err != nil {
				return true, err
			}
		}
		return len(v) > 0, nil
	case int:
		if twoVars {
			return false, errSlow
		}
		for i := range v {
			if stop, err := iterate(f, nil, i); stop || err != nil {
				return true, err
			}
		}
		return v > 0, nil
	}
	return false, errSlow
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// pipeline compiles a pipeline and its declarations.
func (c *compiler) pipeline(p *parse.PipeNode) (expr, error) {
	value, err := c.commands(p.Cmds)
	if err != nil {
		return nil, err
	}
	if len(p.Decl) == 0 {
		return value, nil
	}
	slots := make([]int, len(p.Decl))
	for i, d := range p.Decl {
		if len(d.Ident) != 1 {
			return nil, errNoFast
		}
		if p.IsAssign {
			if slots[i], err = c.lookup(d.Ident[0]); err != nil {
				return nil, err
			}
		} else {
			slots[i] = c.push(d.Ident[0])
		}
	}
	return func(f *frame, dot any) (any, error) {
		v, err := value(f, dot)
		if err != nil {
			return nil, err
		}
		for _, s := range slots {
			f.vars[s] = v
		}
		return v, nil
	}, nil
}

// commands compiles the commands of a pipeline, each one's value passed
// to the next as its last argument.
func (c *compiler) commands(cmds []*parse.CommandNode) (expr, error) {
	if len(cmds) == 0 {
		return nil, errNoFast
	}
	compiled := make([]cmdExpr, len(cmds))
	for i, cmd := range cmds {
		ce, err := c.command(cmd)
		if err != nil {
			return nil, err
		}
		compiled[i] = ce
	}
	if len(compiled) == 1 {
		only := compiled[0]
		return func(f *frame, dot any) (any, error) { return only(f, dot, missing) }, nil
	}
	return func(f *frame, dot any) (any, error) {
		v := missing
		for _, ce := range compiled {
			var err error
			if v, err = ce(f, dot, v); err != nil {
				return nil, err
			}
		}
		return v, nil
	}, nil
}

// noFinal wraps a command that takes no arguments: a value passed to it
// through the pipeline is an error in text/template.
func noFinal(e expr) cmdExpr {
	return func(f *frame, dot, final any) (any, error) {
		if final != missing {
			return nil, errSlow
		}
		return e(f, dot)
	}
}

func (c *compiler) command(cmd *parse.CommandNode) (cmdExpr, error) {
	first := cmd.Args[0]
	if id, ok := first.(*parse.IdentifierNode); ok {
		return c.call(id.Ident, cmd.Args[1:])
	}
	if len(cmd.Args) > 1 {
		return nil, errNoFast // arguments to a method or non-function
	}
	switch first.(type) {
	case *parse.FieldNode, *parse.ChainNode, *parse.PipeNode, *parse.VariableNode,
		*parse.DotNode, *parse.BoolNode, *parse.NumberNode, *parse.StringNode:
		e, err := c.operand(first)
		if err != nil {
			return nil, err
		}
		return noFinal(e), nil
	}
	return nil, errNoFast
}

// operand compiles a value: a field chain, variable, parenthesized
// pipeline, dot or constant. Constants take their ideal type (string,
// bool, int, float64, complex128), which is what text/template gives them
// where no other type is asked for; where a function asks for another,
// the call gives up at run time and text/template converts.
func (c *compiler) operand(n parse.Node) (expr, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return func(_ *frame, dot any) (any, error) { return dot, nil }, nil
	case *parse.StringNode:
		v := any(n.Text)
		return constant(v), nil
	case *parse.BoolNode:
		return constant(n.True), nil
	case *parse.NumberNode:
		v, err := idealConstant(n)
		if err != nil {
			return nil, err
		}
		return constant(v), nil
	case *parse.FieldNode:
		return fieldChain(func(_ *frame, dot any) (any, error) { return dot, nil }, n.Ident), nil
	case *parse.VariableNode:
		slot, err := c.lookup(n.Ident[0])
		if err != nil {
			return nil, err
		}
		v := func(f *frame, _ any) (any, error) { return f.vars[slot], nil }
		if len(n.Ident) == 1 {
			return v, nil
		}
		return fieldChain(v, n.Ident[1:]), nil
	case *parse.ChainNode:
		switch n.Node.(type) {
		case *parse.FieldNode, *parse.VariableNode, *parse.PipeNode, *parse.ChainNode, *parse.DotNode:
		default:
			return nil, errNoFast
		}
		recv, err := c.operand(n.Node)
		if err != nil {
			return nil, err
		}
		return fieldChain(recv, n.Field), nil
	case *parse.PipeNode:
		if len(n.Decl) > 0 {
			// A declaration in parentheses may not run at all (in an
			// argument of and/or that is never evaluated), and
			// text/template declares the variable only when it runs;
			// slots fixed at compile time cannot follow that.
			return nil, errNoFast
		}
		return c.pipeline(n)
	case *parse.IdentifierNode:
		ce, err := c.call(n.Ident, nil)
		if err != nil {
			return nil, err
		}
		return func(f *frame, dot any) (any, error) { return ce(f, dot, missing) }, nil
	}
	return nil, errNoFast
}

// sexpr evaluates to a string without boxing it. ok is false when a value
// is not what it expects, which it finds before calling any function; the
// caller then evaluates the general way.
type sexpr func(f *frame, dot any) (s string, ok bool, err error)

// stringPipe compiles, when it can, a pipeline of one command that gives a
// string from a pair's field or a string constant, through functions of
// one string: {{.Key}}, {{base .Key}}, {{toUpper (base $p.Key)}}.
func (c *compiler) stringPipe(p *parse.PipeNode) sexpr {
	if len(p.Decl) > 0 || len(p.Cmds) != 1 {
		return nil
	}
	cmd := p.Cmds[0]
	if len(cmd.Args) == 1 {
		return c.stringOperand(cmd.Args[0])
	}
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		return nil
	}
	if _, ok := c.funcs[id.Ident]; !ok && id.Ident == "printf" {
		return c.stringPrintf(cmd.Args[1:])
	}
	if _, ok := c.funcs[id.Ident]; !ok || len(cmd.Args) != 2 {
		return nil
	}
	arg := c.stringOperand(cmd.Args[1])
	if arg == nil {
		return nil
	}
	fid := c.funcID(id.Ident)
	return func(f *frame, dot any) (string, bool, error) {
		fn := f.fns[fid]
		switch fn.(type) {
		case func(string) string, func(string) (string, error), func(string, ...string) (string, error):
		default:
			return "", false, nil
		}
		s, ok, err := arg(f, dot)
		if !ok || err != nil {
			return "", ok, err
		}
		switch fn := fn.(type) {
		case func(string) string:
			return fn(s), true, nil
		case func(string) (string, error):
			s, err := fn(s)
			return s, true, err
		case func(string, ...string) (string, error):
			s, err := fn(s)
			return s, true, err
		}
		panic("not reached")
	}
}

// stringPrintf compiles text/template's printf with a constant format.
func (c *compiler) stringPrintf(argNodes []parse.Node) sexpr {
	if len(argNodes) == 0 {
		return nil
	}
	format, ok := argNodes[0].(*parse.StringNode)
	if !ok {
		return nil
	}
	if texts, ok := printfTexts(format.Text); ok && len(texts) == len(argNodes) {
		if sargs := c.plainStringOperands(argNodes[1:]); sargs != nil {
			return concatPrintf(texts, sargs)
		}
	}
	args := make([]expr, len(argNodes)-1)
	for i, a := range argNodes[1:] {
		e, err := c.operand(a)
		if err != nil {
			return nil
		}
		args[i] = e
	}
	return func(f *frame, dot any) (string, bool, error) {
		var buf [4]any
		vals, err := evalArgs(buf[:0], f, dot, args, missing)
		if err != nil {
			return "", false, err
		}
		return fmt.Sprintf(format.Text, vals...), true, nil
	}
}

// printfTexts splits a printf format made only of text, "%%" and "%s"
// into the texts around its verbs: n verbs give n+1 texts. ok is false for
// any other verb, a flag, a width or a trailing "%".
func printfTexts(format string) (texts []string, ok bool) {
	var cur strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			cur.WriteByte(format[i])
			continue
		}
		if i+1 == len(format) {
			return nil, false
		}
		i++
		switch format[i] {
		case '%':
			cur.WriteByte('%')
		case 's':
			texts = append(texts, cur.String())
			cur.Reset()
		default:
			return nil, false
		}
	}
	return append(texts, cur.String()), true
}

// plainStringOperands compiles operands that give a string without calling
// anything (a constant, dot, a field of a pair), or returns nil.
func (c *compiler) plainStringOperands(nodes []parse.Node) []sexpr {
	out := make([]sexpr, 0, len(nodes))
	for _, n := range nodes {
		switch n.(type) {
		case *parse.StringNode, *parse.DotNode, *parse.FieldNode, *parse.VariableNode:
		default:
			return nil
		}
		e := c.stringOperand(n)
		if e == nil {
			return nil
		}
		out = append(out, e)
	}
	return out
}

// concatPrintf is printf of a format of texts and "%s" verbs, one for each
// argument: when every argument is a string, which fmt prints as it is,
// the texts and the arguments joined.
func concatPrintf(texts []string, args []sexpr) sexpr {
	return func(f *frame, dot any) (string, bool, error) {
		var buf [4]string
		vals := buf[:0]
		n := len(texts[len(args)])
		for i, a := range args {
			s, ok, err := a(f, dot)
			if !ok || err != nil {
				return "", ok, err
			}
			vals = append(vals, s)
			n += len(texts[i]) + len(s)
		}
		if n == 0 {
			return "", true, nil
		}
		b := f.bytes(n)[:0]
		for i, s := range vals {
			b = append(b, texts[i]...)
			b = append(b, s...)
		}
		b = append(b, texts[len(vals)]...)
		return unsafe.String(&b[0], len(b)), true, nil
	}
}

func (c *compiler) stringOperand(n parse.Node) sexpr {
	switch n := n.(type) {
	case *parse.DotNode:
		return func(_ *frame, dot any) (string, bool, error) {
			switch d := dot.(type) {
			case string:
				return d, true, nil
			case *string:
				return *d, true, nil
			}
			return "", false, nil
		}
	case *parse.StringNode:
		text := n.Text
		return func(*frame, any) (string, bool, error) { return text, true, nil }
	case *parse.FieldNode:
		if len(n.Ident) == 1 {
			name := n.Ident[0]
			return func(_ *frame, dot any) (string, bool, error) { return pairField(dot, name) }
		}
	case *parse.VariableNode:
		if len(n.Ident) == 2 {
			slot, err := c.lookup(n.Ident[0])
			if err != nil {
				return nil
			}
			name := n.Ident[1]
			return func(f *frame, _ any) (string, bool, error) { return pairField(f.vars[slot], name) }
		}
	case *parse.PipeNode:
		return c.stringPipe(n)
	}
	return nil
}

// pairField returns the Key or Value of a pair given by reference.
func pairField(v any, name string) (string, bool, error) {
	if p, ok := v.(*kv.KVPair); ok && p != nil {
		switch name {
		case "Key":
			return p.Key, true, nil
		case "Value":
			return p.Value, true, nil
		}
	}
	return "", false, nil
}

func constant(v any) expr {
	return func(*frame, any) (any, error) { return v, nil }
}

// idealConstant is the value text/template gives a number where no type
// is asked for.
func idealConstant(n *parse.NumberNode) (any, error) {
	switch {
	case n.IsComplex:
		return n.Complex128, nil
	case n.IsFloat && !isHexInt(n.Text) && !isRuneInt(n.Text) && strings.ContainsAny(n.Text, ".eEpP"):
		return n.Float64, nil
	case n.IsInt && int64(int(n.Int64)) == n.Int64:
		return int(n.Int64), nil
	}
	return nil, errNoFast
}

func isRuneInt(s string) bool { return len(s) > 0 && s[0] == '\'' }

func isHexInt(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

// fieldChain evaluates .A.B.C on the value of recv.
func fieldChain(recv expr, idents []string) expr {
	return func(f *frame, dot any) (any, error) {
		v, err := recv(f, dot)
		if err != nil {
			return nil, err
		}
		for i, name := range idents {
			if v, err = field(v, name, i == len(idents)-1); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
}

// field returns the field name of v: a pair's Key or Value, or a map's
// entry (nil when there is none, as text/template's default missingkey
// option has it).
func field(v any, name string, last bool) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case *kv.KVPair:
		if v != nil {
			return field(*v, name, last)
		}
	case *string:
		return field(*v, name, last)
	case kv.KVPair:
		switch name {
		case "Key":
			return v.Key, nil
		case "Value":
			return v.Value, nil
		}
	case map[string]string:
		if s, ok := v[name]; ok {
			return s, nil
		}
		return nil, nil
	case map[string]any:
		e, ok := v[name]
		if ok && e == nil && !last {
			return nil, errSlow // text/template fails on a nil interface here
		}
		return e, nil
	}
	return nil, errSlow
}

// printValue writes v as text/template's printValue does.
func printValue(w *chunkWriter, v any) error {
	switch v := v.(type) {
	case string:
		_, err := w.WriteString(v)
		return err
	case nil:
		_, err := w.WriteString("<no value>")
		return err
	case *kv.KVPair:
		if v == nil {
			return errSlow
		}
		return printValue(w, *v)
	case *string:
		_, err := w.WriteString(*v)
		return err
	case int, bool, float64, kv.KVPair, []string, []kv.KVPair, map[string]any, map[string]string, []any, []int:
		_, err := fmt.Fprint(w, v)
		return err
	}
	t := reflect.TypeOf(v)
	switch t.Kind() {
	case reflect.Pointer, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return errSlow
	}
	if !t.Implements(errorType) && !t.Implements(stringerType) &&
		(reflect.PointerTo(t).Implements(errorType) || reflect.PointerTo(t).Implements(stringerType)) {
		return errSlow // text/template may use the pointer's method
	}
	_, err := fmt.Fprint(w, v)
	return err
}

var (
	errorType    = reflect.TypeFor[error]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
)

// isTrue is text/template's truth: the value is not the zero of its type.
func isTrue(v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case string:
		return v != "", nil
	case bool:
		return v, nil
	case int:
		return v != 0, nil
	case kv.KVPair:
		return true, nil
	case *kv.KVPair:
		return v != nil, nil
	case *string:
		return *v != "", nil
	case []kv.KVPair:
		return len(v) > 0, nil
	case []string:
		return len(v) > 0, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len() > 0, nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Complex64, reflect.Complex128:
		return rv.Complex() != 0, nil
	case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer:
		return !rv.IsNil(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() != 0, nil
	case reflect.Float32, reflect.Float64:
		return rv.Float() != 0, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint() != 0, nil
	case reflect.Struct:
		return true, nil
	}
	return false, errSlow
}
