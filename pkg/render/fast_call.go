package render

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"text/template/parse"

	"github.com/etcdconfd/confd/pkg/kv"
)

// call compiles a call of the function name with the argument nodes
// args; the value of the command before, if any, is added as the last
// argument.
func (c *compiler) call(name string, argNodes []parse.Node) (cmdExpr, error) {
	args := make([]expr, len(argNodes))
	for i, a := range argNodes {
		e, err := c.operand(a)
		if err != nil {
			return nil, err // nil among them
		}
		args[i] = e
	}
	if fn, ok := c.funcs[name]; ok {
		if reflect.TypeOf(fn).Kind() != reflect.Func {
			return nil, errNoFast
		}
		id := c.funcID(name)
		return func(f *frame, dot, final any) (any, error) {
			var buf [4]any
			vals, err := evalArgs(buf[:0], f, dot, args, final)
			if err != nil {
				return nil, err
			}
			return callFunc(f.fns[id], vals)
		}, nil
	}
	return builtin(name, args)
}

// evalArgs appends the values of args and then final, if not missing, to
// vals. A pair given by reference is passed as the pair.
// funcID returns the index of the function name in the functions of each
// execution.
func (c *compiler) funcID(name string) int {
	id, ok := c.ids[name]
	if !ok {
		id = len(c.names)
		c.ids[name] = id
		c.names = append(c.names, name)
	}
	return id
}

func evalArgs(vals []any, f *frame, dot any, args []expr, final any) ([]any, error) {
	for _, a := range args {
		v, err := a(f, dot)
		if err != nil {
			return nil, err
		}
		vals = append(vals, deref(v))
	}
	if final != missing {
		vals = append(vals, deref(final))
	}
	return vals, nil
}

func deref(v any) any {
	switch p := v.(type) {
	case *kv.KVPair:
		if p != nil {
			return *p
		}
	case *string:
		return *p
	}
	return v
}

// allStrings returns vals as strings, or false if one is not a string.
func allStrings(vals []any) ([]string, bool) {
	out := make([]string, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// callFunc calls fn with vals: directly for the signatures of confd's
// common functions, through reflection for the others. An argument of
// another type than the parameter's makes it give up (text/template then
// converts it or fails).
func callFunc(fn any, vals []any) (any, error) {
	switch fn := fn.(type) {
	case func(string) string:
		if len(vals) == 1 {
			if s, ok := vals[0].(string); ok {
				return fn(s), nil
			}
		}
	case func(string) (string, error):
		if len(vals) == 1 {
			if s, ok := vals[0].(string); ok {
				return result(fn(s))
			}
		}
	case func(string, ...string) (string, error):
		if len(vals) == 1 {
			if s, ok := vals[0].(string); ok {
				return result(fn(s))
			}
		}
		if len(vals) >= 1 {
			if ss, ok := allStrings(vals); ok {
				return result(fn(ss[0], ss[1:]...))
			}
		}
	case func(string) ([]kv.KVPair, error):
		if len(vals) == 1 {
			if s, ok := vals[0].(string); ok {
				return result(fn(s))
			}
		}
	case func(string) (kv.KVPair, error):
		if len(vals) == 1 {
			if s, ok := vals[0].(string); ok {
				return result(fn(s))
			}
		}
	case func(string) ([]string, error):
		if len(vals) == 1 {
			if s, ok := vals[0].(string); ok {
				return result(fn(s))
			}
		}
	case func(string) bool:
		if len(vals) == 1 {
			if s, ok := vals[0].(string); ok {
				return fn(s), nil
			}
		}
	case func(string, string) string:
		if a, b, ok := twoStrings(vals); ok {
			return fn(a, b), nil
		}
	case func(string, string) []string:
		if a, b, ok := twoStrings(vals); ok {
			return fn(a, b), nil
		}
	case func(string, string) bool:
		if a, b, ok := twoStrings(vals); ok {
			return fn(a, b), nil
		}
	case func(string, ...any) string:
		if len(vals) >= 1 {
			if s, ok := vals[0].(string); ok {
				// A copy, so that vals (on the caller's stack) does not
				// escape.
				return fn(s, slices.Clone(vals[1:])...), nil
			}
		}
	case func(int, int) int:
		if len(vals) == 2 {
			a, ok1 := vals[0].(int)
			b, ok2 := vals[1].(int)
			if ok1 && ok2 {
				return fn(a, b), nil
			}
		}
	default:
		return reflectCall(fn, vals)
	}
	return nil, errSlow
}

func twoStrings(vals []any) (a, b string, ok bool) {
	if len(vals) != 2 {
		return "", "", false
	}
	a, ok1 := vals[0].(string)
	b, ok2 := vals[1].(string)
	return a, b, ok1 && ok2
}

func result[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

var reflectValueType = reflect.TypeFor[reflect.Value]()

// reflectCall calls a function of any other signature.
func reflectCall(fn any, vals []any) (any, error) {
	fv := reflect.ValueOf(fn)
	t := fv.Type()
	switch {
	case t.NumOut() == 1:
	case t.NumOut() == 2 && t.Out(1) == errorType:
	default:
		return nil, errSlow
	}
	n := len(vals)
	fixed := t.NumIn()
	if t.IsVariadic() {
		fixed--
		if n < fixed {
			return nil, errSlow
		}
	} else if n != fixed {
		return nil, errSlow
	}
	argv := make([]reflect.Value, n)
	for i, v := range vals {
		pt := t.In(min(i, t.NumIn()-1))
		if t.IsVariadic() && i >= fixed {
			pt = t.In(fixed).Elem()
		}
		if v == nil {
			if pt.Kind() != reflect.Interface || pt == reflectValueType {
				return nil, errSlow
			}
			argv[i] = reflect.Zero(pt)
			continue
		}
		rv := reflect.ValueOf(v)
		if !rv.Type().AssignableTo(pt) {
			return nil, errSlow
		}
		argv[i] = rv
	}
	out := fv.Call(argv)
	if len(out) == 2 && !out[1].IsNil() {
		return nil, out[1].Interface().(error)
	}
	r := out[0]
	if r.Type() == reflectValueType {
		return nil, errSlow
	}
	if r.Kind() == reflect.Interface {
		if r.Type().NumMethod() != 0 {
			return nil, errSlow
		}
		if r.IsNil() {
			return nil, nil
		}
		return r.Elem().Interface(), nil
	}
	return r.Interface(), nil
}

// builtin compiles a call of one of text/template's own functions.
func builtin(name string, args []expr) (cmdExpr, error) {
	switch name {
	case "and", "or":
		or := name == "or"
		return func(f *frame, dot, final any) (any, error) {
			if len(args) == 0 && final == missing {
				return nil, errSlow
			}
			var v any
			for _, a := range args {
				var err error
				if v, err = a(f, dot); err != nil {
					return nil, err
				}
				t, err := isTrue(v)
				if err != nil {
					return nil, err
				}
				if t == or {
					return v, nil
				}
			}
			if final != missing {
				v = final
			}
			return v, nil
		}, nil
	}
	op, ok := builtinOps(name)
	if !ok {
		return nil, errNoFast // html, js, urlquery, slice, call
	}
	return func(f *frame, dot, final any) (any, error) {
		// The values go to a function known here, so that they stay on
		// the stack: a function value would make them escape.
		var buf [4]any
		vals, err := evalArgs(buf[:0], f, dot, args, final)
		if err != nil {
			return nil, err
		}
		return op.apply(vals)
	}, nil
}

// builtinOp is one of text/template's functions that take the values of
// their arguments, the pipeline's final value last.
type builtinOp uint8

const (
	opNot builtinOp = iota
	opLen
	opIndex
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opPrint
	opPrintln
	opPrintf
)

func builtinOps(name string) (builtinOp, bool) {
	switch name {
	case "not":
		return opNot, true
	case "len":
		return opLen, true
	case "index":
		return opIndex, true
	case "eq":
		return opEq, true
	case "ne":
		return opNe, true
	case "lt":
		return opLt, true
	case "le":
		return opLe, true
	case "gt":
		return opGt, true
	case "ge":
		return opGe, true
	case "print":
		return opPrint, true
	case "println":
		return opPrintln, true
	case "printf":
		return opPrintf, true
	}
	return 0, false
}

// apply calls op with vals.
func (op builtinOp) apply(vals []any) (any, error) {
	switch op {
	case opNot:
		if len(vals) != 1 {
			return nil, errSlow
		}
		t, err := isTrue(vals[0])
		return !t, err
	case opLen:
		if len(vals) != 1 {
			return nil, errSlow
		}
		return length(vals[0])
	case opIndex:
		switch len(vals) {
		case 1:
			if vals[0] == nil {
				return nil, errSlow
			}
			return vals[0], nil
		case 2:
			return index(vals[0], vals[1])
		}
		return nil, errSlow
	case opEq:
		if len(vals) < 2 {
			return nil, errSlow
		}
		for _, v := range vals[1:] {
			c, err := compare(vals[0], v, false)
			if err != nil {
				return nil, err
			}
			if c == 0 {
				return true, nil
			}
		}
		return false, nil
	case opNe, opLt, opLe, opGt, opGe:
		if len(vals) != 2 {
			return nil, errSlow
		}
		c, err := compare(vals[0], vals[1], op != opNe)
		if err != nil {
			return nil, err
		}
		switch op {
		case opNe:
			return c != 0, nil
		case opLt:
			return c < 0, nil
		case opLe:
			return c <= 0, nil
		case opGt:
			return c > 0, nil
		}
		return c >= 0, nil
	case opPrint:
		return fmt.Sprint(vals...), nil
	case opPrintln:
		return fmt.Sprintln(vals...), nil
	case opPrintf:
		if len(vals) == 0 {
			return nil, errSlow
		}
		format, ok := vals[0].(string)
		if !ok {
			return nil, errSlow
		}
		return fmt.Sprintf(format, vals[1:]...), nil
	}
	return nil, errSlow
}

// length is text/template's len for the values confd's functions give.
func length(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return len(v), nil
	case []kv.KVPair:
		return len(v), nil
	case []string:
		return len(v), nil
	case []any:
		return len(v), nil
	case []int:
		return len(v), nil
	case map[string]any:
		return len(v), nil
	case map[string]string:
		return len(v), nil
	}
	return nil, errSlow
}

// index is text/template's index with one index into the lists and maps
// confd's functions give.
func index(item, i any) (any, error) {
	if key, ok := i.(string); ok {
		switch m := item.(type) {
		case map[string]string:
			return m[key], nil
		case map[string]any:
			return m[key], nil // nil when missing, as text/template's zero interface
		}
		return nil, errSlow
	}
	n, ok := i.(int)
	if !ok {
		return nil, errSlow
	}
	switch s := item.(type) {
	case []string:
		if n >= 0 && n < len(s) {
			return s[n], nil
		}
	case []kv.KVPair:
		if n >= 0 && n < len(s) {
			return s[n], nil
		}
	case []int:
		if n >= 0 && n < len(s) {
			return s[n], nil
		}
	case []any:
		if n >= 0 && n < len(s) {
			return s[n], nil
		}
	}
	return nil, errSlow
}

// compare compares two strings, two ints or (unless ordered) two bools,
// as text/template's eq and lt do. Other kinds give up.
func compare(a, b any, ordered bool) (int, error) {
	switch a := a.(type) {
	case string:
		if b, ok := b.(string); ok {
			return cmp.Compare(a, b), nil
		}
	case int:
		if b, ok := b.(int); ok {
			return cmp.Compare(a, b), nil
		}
	case bool:
		if b, ok := b.(bool); ok && !ordered {
			if a == b {
				return 0, nil
			}
			return 1, nil
		}
	}
	return 0, errSlow
}
