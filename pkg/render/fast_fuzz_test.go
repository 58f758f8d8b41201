package render

import (
	"strings"
	"testing"
)

// templateGen builds a template text from fuzz input: each byte picks the
// next piece of a grammar of the constructs confd templates use, so that
// most inputs parse and reach both execution paths. Expressions are built
// for the kind of value they are to give (a string, an int, a list of
// pairs, ...), knowing what dot and each variable hold, so that most
// templates also execute; now and then a piece of another kind is put in
// on purpose, to reach the errors and the fallbacks. When the input runs
// out every choice is the first, which always ends the template.
type templateGen struct {
	data   []byte
	depth  int      // parenthesized expressions around the current point
	blocks int      // if, with and range around the current point
	vars   []genVar // declared variables in scope, innermost last
	loops  int      // ranges whose body holds the current point
	dot    gkind    // what dot holds
	// exact is set where an operand of another kind than asked for
	// could make a range run long: in what sets dot or a variable.
	exact int
	b     strings.Builder
}

// gkind is the kind of value an expression gives.
type gkind uint8

const (
	kNil   gkind = iota // the data, nil
	kStr                // string
	kInt                // int
	kBool               // bool
	kPair               // kv.KVPair, or the pair of a range over pairs
	kPairs              // []kv.KVPair
	kStrs               // []string
	kInts               // []int
	kList               // []any
	kMap                // map[string]any or map[string]string
	kAny                // any of them
	numKinds
)

type genVar struct {
	name string
	k    gkind
}

func (g *templateGen) next(n int) int {
	if len(g.data) == 0 {
		return 0
	}
	c := int(g.data[0])
	g.data = g.data[1:]
	return c % n
}

// pick returns one of opts; the first when the input has run out.
func (g *templateGen) pick(opts ...string) string { return opts[g.next(len(opts))] }

// genLiterals are the constants of each kind; the numbers of kAny are
// every syntax text/template knows, which give ints, floats and complexes.
var genLiterals = map[gkind][]string{
	kStr: {`"s"`, `""`, `"a,b"`, `"/app/servers/cocky_morse"`, `"/app/config/port"`, `"cocky_morse"`, `"x y"`,
		`"/svc"`, `"%s"`, `"api"`, "`raw`", `"/app/servers"`, `"/app/config/csv"`},
	kInt:  {`1`, `0`, `2`, `-1`, `3`, `0x10`, `'a'`, `1_2`, `0b11`, `0o7`, `017`, `+1`, `0X1F`, `'\n'`, `-0`},
	kBool: {`true`, `false`},
	kAny: {`1.5`, `1e3`, `1.0`, `.5`, `5.`, `-0x1e`, `0x1p4`, `2i`, `1+2i`, `-.5`, `1E3`, `0x_1`, `-0.0`,
		`-9223372036854775808`, `-2`, `1e-3`, `0.`, `'\x41'`},
	kNil: {`$`},
}

// genKeys are keys of the store, for get and getv.
var genKeys = []string{`"/app/config/port"`, `"/app/servers/cocky_morse"`, `"/app/config/csv"`,
	`"/app/config/empty"`, `"/app/config/json"`, `"/svc/api/1"`, `"/missing"`, `"/app/config/list"`}

// genCalls are the commands that give a value of each kind. @S, @I, @B,
// @P, @L, @T, @N, @Y, @M and @A are operands of kinds kStr, kInt, kBool,
// kPair, kPairs, kStrs, kInts, kList, kMap and kAny; @K is a key of the
// store. Several commands make a pipeline whose values are final
// arguments.
var genCalls = map[gkind][]string{
	kStr: {`getv @K`, `base @S`, `toUpper @S`, `getv (printf "/app/servers/%s" @S)`, `printf "%s-%d" @S @I`,
		`printf "%v" @A`, `print @A @A`, `dir @S`, `toLower (base @S)`, `getv "/missing" @S`, `getv @S "d"`,
		`println @A`, `join @T ","`, `index @T @I`, `trimSuffix @S @S`, `base64Encode @S`, `upper @S`,
		`replace @S "a" "b" -1`, `getenv "HOSTNAME"`, `default "d" @A`, `printf "%v|%s" @A @S`, `print`,
		`@S | base`, `@S | toUpper`, `@S | printf "%s!"`, `@A | print`, `@A | printf "%v"`,
		`@S | printf "%s-%s" @S`, `@S | getv`, `@S | base | toUpper`, `@I | printf "%d"`, `print @A @I @S`,
		`printf "%s:%v" @S (len @A)`, `getv (printf "%s" @S) "d"`, `@S | trimSuffix ":80"`, `index @M @S`,
		`printf "%T" @A`, `toUpper (base @S)`, `printf "%d %s" @I`, `base64Decode (getv "/app/config/b64")`,
		`base64Decode @S`, `printf (print "%d") @I`, `printf`, `print print`, `printf "%v" println`,
		`index (splitn "," 3 @S) "_1"`, `@A | printf "%v|%v" @A`, `println @A @S`},
	kInt: {`len @T`, `add @I @I`, `atoi (getv "/app/config/port")`, `len @S`, `index @N @I`, `len @L`,
		`sub @I 1`, `atoi @S`, `len @A`, `len @M`, `@I | add 1`, `@S | len`, `@T | len`, `@I | add @I`,
		`mul @I 2`, `len @Y`, `len list`, `index (list 1 2) @I`},
	kBool: {`eq @S @S`, `eq @I @I`, `not @A`, `ne @A @A`, `lt @I @I`, `exists @S`, `and @A @A`, `or @A @A`,
		`eq @A @A @A`, `le @S @S`, `gt @I @I`, `ge @I @I`, `contains @S @S`, `eq @B @B`, `ne @S @S`,
		`eq (base @S) "cocky_morse"`, `lt @S @S`, `@A | not`, `@S | eq @S`, `@I | lt @I`, `@A | and @A`,
		`@A | or @A`, `@I | ne @I`, `@B | and`, `@B | or @B | not`, `and @B @B @B`, `or @B @A`, `not`,
		`eq @I @I @I`, `@A | eq @A @A`},
	kPair: {`get @K`, `index @L @I`, `first @L`, `index @L 0`, `@L | first`, `last @L`},
	kPairs: {`gets "/app/servers/*"`, `gets "/svc/*/*"`, `gets "/nothing/*"`, `gets "/app/config/*"`,
		`reverse @L`, `sortKVByLength (gets "/lengths/*")`, `gets (printf "/svc/%s/*" @S)`, `@L | reverse`},
	kStrs: {`ls "/app/servers"`, `lsdir "/svc"`, `ls "/none"`, `split @S ","`, `getvs "/svc/*/1"`,
		`reverse @T`, `sortByLength @T`, `split (getv "/app/config/csv") ","`, `ls @S`, `@T | reverse`,
		`@S | ls`, `split "a:b:c" ":"`},
	kInts: {`seq 1 3`, `seq 2 1`, `seq 0 2`, `until 3`, `seq 5 6`, `seq 1 1`},
	kList: {`list @A @A`, `list`, `jsonArray (getv "/app/config/list")`, `jsonArray "[1,\"x\",true]"`,
		`jsonArray (getv "/j/arr")`, `list @S @I`, `@A | list @A`, `jsonArray "[1,null]"`, `list @P`, `list list`},
	kMap: {`json (getv "/app/config/json")`, `dict "k" @A "j" @A`, `map "a" 1 "b" "x"`, `json "{}"`,
		`json "null"`, `splitn "," 3 "a,b,c"`, `json (getv "/j/null")`, `json (getv "/j/obj")`,
		`dict "Key" @S "Value" @S`, `map "host" @S`, `@S | dict "k"`, `dict "a" (dict "b" @A)`},
	kAny: {`and @A @A`, `or @A @A`, `index @M @S`, `index @Y @I`, `first @Y`, `and @A`, `or @A @A @A`,
		`index @A`, `index @M "host"`, `index @Y 0`, `@I | index @Y`, `@A | $`, `@A | (print)`, `@S | $.x`,
		`and print`, `or @A | and @A`},
}

// genTerminals are operands of each kind without operands in them.
var genTerminals = map[gkind]string{
	kPair: `(get "/app/config/port")`, kPairs: `(gets "/app/servers/*")`, kStrs: `(ls "/app/servers")`,
	kInts: `(seq 1 3)`, kList: `(list 1 "a")`, kMap: `(json (getv "/app/config/json"))`,
}

// genFields are fields of each kind of value.
var genFields = map[gkind][]string{
	kPair: {"Key", "Value", "Key", "Value", "Nope"},
	kMap:  {"host", "port", "tags", "a", "k", "missing", "s", "x", "Key", "a.b", "x.y", "b.c", "n", "_0", "j"},
	kAny:  {"Key", "Value", "host", "x", "a"},
}

// fieldOf is op.field, as text/template reads it.
func fieldOf(op, field string) string {
	switch {
	case op == ".":
		return "." + field
	case strings.HasPrefix(op, "$"), strings.HasPrefix(op, "("), strings.HasPrefix(op, "."):
		return op + "." + field
	}
	return "(" + op + ")." + field
}

// refs lists the variables, dot and fields of them that give a k.
func (g *templateGen) refs(k gkind) []string {
	var out []string
	if g.dot == k || k == kAny {
		out = append(out, ".")
	}
	for _, v := range g.vars {
		if v.k == k || k == kAny {
			out = append(out, v.name)
		}
		if k == kStr || k == kAny {
			switch v.k {
			case kPair:
				out = append(out, v.name+".Key", v.name+".Value")
			case kMap:
				out = append(out, v.name+".host", v.name+".s")
			}
		}
	}
	if k == kStr || k == kAny {
		switch g.dot {
		case kPair:
			out = append(out, ".Key", ".Value")
		case kMap:
			out = append(out, ".host", ".s")
		}
	}
	if k == kAny || k == kNil {
		out = append(out, "$", "$.x")
	}
	return out
}

// operand returns an argument that gives a k: a variable, dot, a field,
// a constant, a parenthesized pipeline, or a field of one.
func (g *templateGen) operand(k gkind) string {
	if g.next(12) == 11 && g.exact == 0 {
		k = gkind(g.next(int(numKinds))) // another kind, on purpose
	}
	if k == kAny && g.next(3) == 2 {
		k = gkind(g.next(int(kAny)))
	}
	refs := g.refs(k)
	if len(refs) > 0 && g.next(3) == 0 {
		return refs[g.next(len(refs))]
	}
	lits := genLiterals[k]
	if g.depth >= 3 || len(g.data) == 0 {
		if len(lits) > 0 {
			return lits[g.next(len(lits))]
		}
		if len(refs) > 0 {
			return refs[0]
		}
		return genTerminals[k]
	}
	switch g.next(12) {
	case 0, 1, 2, 3:
		if len(lits) > 0 {
			return lits[g.next(len(lits))]
		}
	case 4:
		// A field of a pipeline or variable of another kind.
		from := []gkind{kPair, kMap, kAny}[g.next(3)]
		if k != kStr && k != kAny && from == kPair {
			from = kMap
		}
		fields := genFields[from]
		return fieldOf(g.operand(from), fields[g.next(len(fields))])
	}
	return "(" + g.pipeline(k) + ")"
}

// exactPipeline is pipeline without operands of other kinds.
func (g *templateGen) exactPipeline(k gkind) string {
	g.exact++
	defer func() { g.exact-- }()
	return g.pipeline(k)
}

// pipeline returns a pipeline that gives a k.
func (g *templateGen) pipeline(k gkind) string {
	g.depth++
	defer func() { g.depth-- }()
	if k == kAny || k == kNil {
		k = gkind(1 + g.next(int(kAny)))
	}
	if g.next(8) == 7 {
		// A lone operand: {{.Key}}, {{$x}}, {{(base .Key)}}, {{1}}.
		return g.operand(k)
	}
	calls := genCalls[k]
	call := calls[g.next(len(calls))]
	var out strings.Builder
	for {
		i := strings.IndexByte(call, '@')
		if i < 0 {
			out.WriteString(call)
			break
		}
		out.WriteString(call[:i])
		c := call[i+1]
		call = call[i+2:]
		if c == 'K' {
			out.WriteString(genKeys[g.next(len(genKeys))])
			continue
		}
		out.WriteString(g.operand(map[byte]gkind{'S': kStr, 'I': kInt, 'B': kBool, 'P': kPair, 'L': kPairs,
			'T': kStrs, 'N': kInts, 'Y': kList, 'M': kMap, 'A': kAny}[c]))
	}
	return out.String()
}

var genTexts = []string{"a", " ", "\n", "server ", ":", ",", ";"}

// items writes up to n statements. The variables they declare stay in
// g.vars; the caller ends their scope.
func (g *templateGen) items(n int) {
	for range n {
		if len(g.data) == 0 {
			return
		}
		g.item()
	}
}

// scope writes up to n statements in a scope of their own.
func (g *templateGen) scope(n int) {
	mark := len(g.vars)
	g.items(n)
	g.vars = g.vars[:mark]
}

var genVarNames = []string{"$x", "$y", "$z", "$e", "$i"}

// declare returns pipe p, which gives a k, with a declaration or
// assignment of a variable or without, recording the declared variable.
func (g *templateGen) declare(k gkind, p string) string {
	switch g.next(6) {
	case 1:
		name := genVarNames[g.next(len(genVarNames))]
		g.vars = append(g.vars, genVar{name, k})
		return name + " := " + p
	case 2:
		if len(g.vars) > 0 {
			v := &g.vars[g.next(len(g.vars))]
			if v.k != k {
				v.k = kAny
			}
			return v.name + " = " + p
		}
	}
	return p
}

// randKind is a kind for a value to print, test or declare.
func (g *templateGen) randKind() gkind {
	return gkind(1 + g.next(int(kAny)))
}

func (g *templateGen) item() {
	open, close := "{{", "}}"
	if g.next(16) == 15 {
		open, close = "{{- ", " -}}"
	}
	switch k := g.next(20); {
	case k < 3:
		g.b.WriteString(genTexts[g.next(len(genTexts))])
	case k < 7:
		g.b.WriteString(open + g.pipeline(g.randKind()) + close)
	case k == 7:
		// A string from a pair or a string function of one: the string
		// evaluator's path.
		g.b.WriteString(open + g.pipeline(kStr) + close)
	case k == 8:
		kind := g.randKind()
		p := g.exactPipeline(kind)
		if len(g.vars) > 0 && g.next(3) == 0 {
			v := &g.vars[g.next(len(g.vars))]
			if v.k != kind {
				v.k = kAny
			}
			g.b.WriteString(open + v.name + " = " + p + close)
			return
		}
		name := genVarNames[g.next(len(genVarNames))]
		g.b.WriteString(open + name + " := " + p + close)
		g.vars = append(g.vars, genVar{name, kind})
	case k == 9:
		if g.loops > 0 {
			word := g.pick("break", "continue")
			if g.next(2) == 0 {
				g.b.WriteString("{{if " + g.pipeline(kBool) + "}}{{" + word + "}}{{end}}")
			} else {
				g.b.WriteString("{{" + word + "}}")
			}
			return
		}
		g.b.WriteString("{{/* c */}}")
	case g.blocks >= 3:
		g.b.WriteString("b")
	case k < 13:
		g.ifOrWith("if")
	case k < 15:
		g.ifOrWith("with")
	default:
		g.rangeStmt()
	}
}

// ifOrWith writes an if or with, with else if or else with branches and
// an else.
func (g *templateGen) ifOrWith(kw string) {
	g.blocks++
	mark, dot := len(g.vars), g.dot
	defer func() { g.blocks--; g.vars = g.vars[:mark]; g.dot = dot }()
	g.b.WriteString("{{" + kw)
	for {
		kind := g.randKind()
		if kw == "if" && g.next(2) == 0 {
			kind = kBool
		}
		// A variable declared here is seen by every branch after it.
		p := g.pipeline
		if kw == "with" || g.next(2) == 0 {
			p = g.exactPipeline
		}
		g.b.WriteString(" " + g.declare(kind, p(kind)) + "}}")
		afterHead := len(g.vars)
		if kw == "with" {
			g.dot = kind
		}
		g.items(1 + g.next(3))
		g.dot = dot
		if g.next(4) != 3 {
			// The parser lets the else branches see the variables the
			// branch before declared; text/template does not.
			g.vars = g.vars[:afterHead]
		}
		switch g.next(3) {
		case 0:
			g.b.WriteString("{{end}}")
			return
		case 1:
			g.b.WriteString("{{else}}")
			g.items(1 + g.next(3))
			g.b.WriteString("{{end}}")
			return
		}
		g.b.WriteString("{{else " + kw)
	}
}

// rangeStmt writes a range over a list, a map or an int, with variables
// and an else branch.
func (g *templateGen) rangeStmt() {
	g.blocks++
	mark, dot := len(g.vars), g.dot
	defer func() { g.blocks--; g.vars = g.vars[:mark]; g.dot = dot }()
	var src string
	var elem, index gkind = kAny, kInt
	switch g.next(9) {
	case 0, 1:
		src, elem = g.exactPipeline(kPairs), kPair
	case 2:
		src, elem = g.exactPipeline(kStrs), kStr
	case 3:
		src, elem = g.exactPipeline(kInts), kInt
	case 4:
		src, elem, index = g.exactPipeline(kMap), kAny, kStr
	case 5:
		src = g.exactPipeline(kList)
	case 6:
		src, elem = g.pick("3", "0", "2", "-1", "1", `len (ls "/app/servers")`, `len (list)`), kInt
	case 7:
		// Dot or a variable, but not an int, which may be large.
		src, elem = "$", kAny
		refs := []string{"$", "$.x"}
		if g.dot != kInt && g.dot != kAny {
			refs = append(refs, ".")
		}
		for _, v := range g.vars {
			if v.k != kInt && v.k != kAny {
				refs = append(refs, v.name)
			}
		}
		switch src = refs[g.next(len(refs))]; src {
		case ".":
			elem = g.dot
		default:
			for _, v := range g.vars {
				if v.name == src {
					elem = v.k
				}
			}
		}
		elem = map[gkind]gkind{kPairs: kPair, kStrs: kStr, kInts: kInt}[elem]
		if elem == kNil {
			elem = kAny
		}
	default:
		// Something else, which text/template may not range over.
		kind := []gkind{kStr, kBool, kPair, kMap, kList, kStrs}[g.next(6)]
		src, elem = g.exactPipeline(kind), kAny
	}
	head := ""
	switch g.next(7) {
	case 1, 2:
		name := g.pick("$e", "$p", "$x", "$v")
		head = name + " := "
		g.vars = append(g.vars, genVar{name, elem})
	case 3, 4:
		i, e := g.pick("$i", "$k", "$i"), g.pick("$e", "$v", "$p", "$i")
		head = i + ", " + e + " := "
		g.vars = append(g.vars, genVar{i, index}, genVar{e, elem})
	case 5:
		if n := len(g.vars); n > 0 {
			v := &g.vars[g.next(n)]
			head = v.name + " = "
			if v.k != elem {
				v.k = kAny
			}
		}
	case 6:
		if n := len(g.vars); n > 0 {
			i, e := &g.vars[g.next(n)], &g.vars[g.next(n)]
			head = i.name + ", " + e.name + " = "
			i.k, e.k = kAny, kAny
		}
	}
	g.b.WriteString("{{range " + head + src + "}}")
	afterHead := len(g.vars)
	g.dot = elem
	g.loops++
	g.items(1 + g.next(4))
	g.loops--
	g.dot = dot
	if g.next(4) != 3 {
		g.vars = g.vars[:afterHead]
	}
	if g.next(3) != 0 {
		// The else branch, where break and continue are the outer
		// range's, if any.
		g.b.WriteString("{{else}}")
		g.items(1 + g.next(3))
	}
	g.b.WriteString("{{end}}")
}

// generate writes a template from the input.
func (g *templateGen) generate() string {
	g.scope(1 + g.next(6))
	return g.b.String()
}

// fuzzKeys are the keys the generated templates read: testKeys and some
// JSON with nulls and nesting.
func fuzzKeys() map[string]string {
	m := testKeys()
	m["/j/null"] = `{"a":null,"b":{"c":null},"n":1}`
	m["/j/arr"] = `[{"k":"v"},1,"s",true,null]`
	m["/j/obj"] = `{"x":{"y":"z"},"l":[1,2],"s":"str","t":true,"n":0,"host":"h"}`
	return m
}

// FuzzFastPath checks the fast path against text/template on generated
// templates: wherever the fast path completes, its output must be
// text/template's, and text/template must not have failed.
func FuzzFastPath(f *testing.F) {
	for _, seed := range []string{
		"\x05\x01\x02\x03",
		"\x0b\x02\x0f\x03\x05\x00\x01\x04\x02",
		"\x0b\x02\x10\x01\x05\x01\x02\x05\x02\x07",
		"\x06\x00\x01\x02\x05\x00\x00\x01\x0b\x00\x11\x02\x03\x04",
		"\x0b\x01\x12\x00\x02\x04\x01\x05\x00\x02\x0a",
		"\x0a\x02\x00\x0e\x01\x05\x03\x03\x01\x00\x07\x00\x00",
	} {
		f.Add([]byte(seed))
	}
	s := storeOf(fuzzKeys())
	opts := testOptions()
	f.Fuzz(func(t *testing.T, data []byte) {
		text := (&templateGen{data: data}).generate()
		tmpl, err := Parse("fuzz.tmpl", text, opts)
		if err != nil {
			return
		}
		checkSame(t, text, tmpl, s)
	})
}

// TestFastPathGenerated runs a fixed set of generated templates, so that
// plain go test covers more than the seeds, and checks that the generator
// keeps reaching the fast path.
func TestFastPathGenerated(t *testing.T) {
	s := storeOf(fuzzKeys())
	opts := testOptions()
	parsed, fast := 0, 0
	for i := range 3000 {
		data := make([]byte, 64)
		x := uint32(i*2654435761 + 1)
		for j := range data {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			data[j] = byte(x)
		}
		text := (&templateGen{data: data}).generate()
		tmpl, err := Parse("gen.tmpl", text, opts)
		if err != nil {
			continue
		}
		parsed++
		if checkSame(t, text, tmpl, s) {
			fast++
		}
	}
	t.Logf("%d templates parsed, the fast path completed %d", parsed, fast)
	if parsed < 1000 || fast < parsed/10 {
		t.Fatalf("%d templates parsed and %d completed on the fast path: the generator no longer exercises it", parsed, fast)
	}
}
