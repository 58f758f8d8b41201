package render

import (
	"strings"
	"testing"
)

// templateGen builds a template text from fuzz input: each byte picks the
// next piece of a small grammar of the constructs confd templates use, so
// that most inputs parse and reach both execution paths.
type templateGen struct {
	data  []byte
	depth int
	vars  []string // declared variables in scope
	loops int      // ranges around the current point
	b     strings.Builder
}

func (g *templateGen) next(n int) int {
	if len(g.data) == 0 {
		return 0
	}
	c := int(g.data[0])
	g.data = g.data[1:]
	return c % n
}

var genOperands = []string{
	`.`, `.Key`, `.Value`, `$`, `"s"`, `""`, `"/app/servers/cocky_morse"`, `1`, `0`, `-2`, `1.5`, `true`, `false`,
	`(getv "/app/config/port")`, `(getv "/missing" "d")`, `(gets "/app/servers/*")`, `(ls "/app/servers")`,
	`(lsdir "/svc")`, `(json (getv "/app/config/json"))`, `(jsonArray (getv "/app/config/list"))`,
	`(split (getv "/app/config/csv") ",")`, `(seq 1 3)`, `(map "a" 1 "b" "x")`, `(get "/app/config/port")`,
	`(jsonArray "[1,null,\"x\"]")`, `(dict "k" .)`, `2`, `"a,b"`, `(getvs "/svc/*/1")`,
}

var genFuncs = []string{
	`base`, `dir`, `toUpper`, `toLower`, `printf "%v"`, `printf "%s-%d"`, `print`, `len`, `not`, `and`, `or`,
	`eq`, `ne`, `lt`, `ge`, `index`, `split`, `join`, `contains`, `trimSuffix`, `atoi`, `add`, `reverse`,
	`sortByLength`, `base64Encode`, `upper`, `default`, `getv`, `gets`, `ls`, `exists`, `list`, `first`,
}

func (g *templateGen) operand() string {
	if len(g.vars) > 0 && g.next(4) == 0 {
		v := g.vars[g.next(len(g.vars))]
		switch g.next(4) {
		case 0:
			return v + ".Key"
		case 1:
			return v + ".host"
		}
		return v
	}
	if g.depth < 3 && g.next(5) == 0 {
		g.depth++
		defer func() { g.depth-- }()
		return "(" + g.pipeline() + ")"
	}
	return genOperands[g.next(len(genOperands))]
}

func (g *templateGen) command() string {
	if g.next(3) == 0 {
		return g.operand()
	}
	parts := []string{genFuncs[g.next(len(genFuncs))]}
	for range g.next(3) {
		parts = append(parts, g.operand())
	}
	return strings.Join(parts, " ")
}

func (g *templateGen) pipeline() string {
	cmds := []string{g.command()}
	for g.next(4) == 0 && len(cmds) < 3 {
		cmds = append(cmds, genFuncs[g.next(len(genFuncs))])
	}
	return strings.Join(cmds, " | ")
}

var genTexts = []string{"a", " ", "\n", "server ", ":", ","}

func (g *templateGen) list(n int) {
	mark := len(g.vars)
	defer func() { g.vars = g.vars[:mark] }()
	for range n {
		if len(g.data) == 0 {
			return
		}
		g.item()
	}
}

func (g *templateGen) item() {
	switch k := g.next(12); {
	case k < 3:
		g.b.WriteString(genTexts[g.next(len(genTexts))])
	case k < 6:
		g.b.WriteString("{{" + g.pipeline() + "}}")
	case k == 6:
		name := []string{"$x", "$y", "$z"}[g.next(3)]
		if g.next(3) == 0 && len(g.vars) > 0 {
			g.b.WriteString("{{" + g.vars[g.next(len(g.vars))] + " = " + g.pipeline() + "}}")
			return
		}
		g.b.WriteString("{{" + name + " := " + g.pipeline() + "}}")
		g.vars = append(g.vars, name)
	case k == 7 && g.loops > 0:
		g.b.WriteString([]string{"{{break}}", "{{continue}}"}[g.next(2)])
	case g.depth >= 3:
		g.b.WriteString("b")
	default:
		g.depth++
		defer func() { g.depth-- }()
		kw := []string{"if", "with", "range"}[g.next(3)]
		head := g.pipeline()
		mark := len(g.vars)
		if kw == "range" {
			switch g.next(3) {
			case 1:
				head = "$e := " + head
				g.vars = append(g.vars, "$e")
			case 2:
				head = "$i, $e := " + head
				g.vars = append(g.vars, "$i", "$e")
			}
			g.loops++
			defer func() { g.loops-- }()
		}
		g.b.WriteString("{{" + kw + " " + head + "}}")
		g.list(1 + g.next(4))
		if g.next(2) == 0 {
			g.b.WriteString("{{else}}")
			g.list(1 + g.next(3))
		}
		g.b.WriteString("{{end}}")
		g.vars = g.vars[:mark]
	}
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
	s := storeOf(testKeys())
	opts := testOptions()
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &templateGen{data: data}
		g.list(1 + g.next(6))
		text := g.b.String()
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
	s := storeOf(testKeys())
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
		g := &templateGen{data: data}
		g.list(1 + g.next(6))
		text := g.b.String()
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
