package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/etcdconfd/confd/pkg/kv"
)

// both is what runBoth found.
type both struct {
	slow     []byte
	slowErr  error
	fast     []byte
	fastDone bool // the fast path completed (without falling back)
}

// runBoth executes tmpl against s with text/template and, when it
// compiled, with the fast path.
func runBoth(t *testing.T, tmpl *Template, s Store) (r both) {
	t.Helper()
	c, err := tmpl.getClone()
	if err != nil {
		t.Fatal(err)
	}
	c.b.ctx, c.b.store = context.Background(), s
	var sb chunkWriter
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.slowErr = fmt.Errorf("panic: %v", p)
			}
		}()
		r.slowErr = c.tmpl.Execute(&sb, nil)
	}()
	r.slow = bytes.Join(sb.chunks(), nil)
	if tmpl.prog != nil {
		var fb chunkWriter
		r.fastDone = tmpl.runFast(c, &fb) == nil
		r.fast = bytes.Join(fb.chunks(), nil)
	}
	return r
}

// checkSame fails the test when the fast path completed with another
// output than text/template's, or completed where text/template failed.
func checkSame(t *testing.T, text string, tmpl *Template, s Store) (fastDone bool) {
	t.Helper()
	r := runBoth(t, tmpl, s)
	if !r.fastDone {
		return false
	}
	if r.slowErr != nil {
		t.Fatalf("template %q: the fast path succeeded with %q where text/template failed: %v", text, r.fast, r.slowErr)
	}
	if !bytes.Equal(r.slow, r.fast) {
		t.Fatalf("template %q:\nfast path: %q\ntext/template: %q", text, r.fast, r.slow)
	}
	return true
}

// TestFastPathMatchesTextTemplate runs templates with every construct the
// fast path handles, and some it gives up on, through both paths.
func TestFastPathMatchesTextTemplate(t *testing.T) {
	tests := []struct {
		text string
		// fast says whether the fast path must complete.
		fast bool
	}{
		{`{{range gets "/app/servers/*"}}server {{base .Key}} {{.Value}} check
{{end}}`, true},
		{`{{range ls "/app/servers"}}{{getv (printf "/app/servers/%s" .)}}
{{end}}`, true},
		{`{{range $s := lsdir "/svc"}}backend {{$s}}
{{range gets (printf "/svc/%s/*" $s)}}  server {{base .Key}} {{.Value}}
{{end}}{{end}}`, true},
		{`{{range $i, $p := gets "/app/servers/*"}}{{$i}}={{$p.Key}} {{.}}{{end}}`, true},
		{`{{range $i, $p := gets "/nothing/*"}}x{{else}}empty {{$p}} {{$i}}{{end}}`, true},
		{`{{range gets "/app/servers/*"}}{{if eq (base .Key) "cocky_morse"}}{{continue}}{{end}}{{.Key}}{{if eq (base .Key) "goofy_goldstine"}}{{break}}{{end}},{{end}}`, true},
		{`{{$n := 0}}{{range ls "/app/servers"}}{{$n = add $n 1}}{{end}}{{$n}}`, true},
		{`{{range $i, $n := ls "/app/servers"}}{{$i}}:{{.}}|{{$n}}|{{if .}}t{{end}}|{{with .}}{{.}}{{end}}|{{eq . "cocky_morse"}}|{{len .}}|{{not .}}|{{and 1 .}}|{{printf "%v %q %T %s" . . . .}}|{{base .}};{{end}}`, true},
		{`{{$last := ""}}{{range ls "/app/servers"}}{{$last = .}}{{end}}{{$last}} {{printf "%T" $last}}`, true},
		// strings printf joins are made in shared blocks: an empty one, one
		// too long for a block, and enough to fill several blocks.
		{`[{{printf "%s" (getv "/app/config/empty")}}][{{printf ""}}][{{printf "%s%s" "" ""}}]`, true},
		{`{{range ls "/app/servers"}}{{printf "%s=%s;" . "` + strings.Repeat("x", 1500) + `"}}{{end}}`, true},
		{`{{range seq 1 3000}}{{base (printf "/k/%s-%s|" "abcdefghijklmnop" "q")}}{{getv (printf "/app/config/%s" "port")}}{{end}}`, true},
		{`{{with getv "/app/config/port"}}port {{.}}{{else}}none{{end}}`, true},
		{`{{with getv "/app/config/empty"}}port {{.}}{{else with getv "/app/config/csv"}}csv {{.}}{{else}}none{{end}}`, true},
		{`{{if exists "/app/config/port"}}yes{{else if exists "/x"}}x{{else}}no{{end}}`, true},
		{`{{if $v := getv "/app/config/port"}}{{$v}}{{end}}`, true},
		{`{{$d := json (getv "/app/config/json")}}{{$d.host}}:{{$d.port}} {{$d.missing}} {{$d.tags}}`, true},
		{`{{$d := json (getv "/app/config/json")}}{{range $k, $v := $d}}{{$k}}={{$v}};{{end}}`, true},
		{`{{range jsonArray (getv "/app/config/list")}}[{{.}}]{{end}}`, true},
		{`{{range split (getv "/app/config/csv") ","}}{{. | toUpper}}{{end}}`, true},
		{`{{join (split (getv "/app/config/csv") ",") "-"}}`, true},
		{`{{index (split "a:b:c" ":") 1}} {{len (ls "/app/servers")}} {{len "abc"}}`, true},
		{`{{$m := map "a" 1 "b" "x"}}{{index $m "a"}} {{index $m "zz"}} {{$m.b}}`, true},
		{`{{and 1 0 2}} {{or 0 "" "x"}} {{not ""}} {{and}}{{or 0 | not}}`, false},
		{`{{and 1 0 2}} {{or 0 "" "x"}} {{not ""}} {{"v" | and 1}}`, true},
		{`{{eq 1 1 2}} {{ne "a" "b"}} {{lt 1 2}} {{le "b" "a"}} {{gt 3 2}} {{ge 2 2}} {{eq true false}}`, true},
		{`{{eq 1 "a"}}`, false},
		{`{{1}} {{1.5}} {{0x10}} {{'a'}} {{1e3}} {{true}} {{"s"}} {{2i}}`, true},
		{`{{.}} {{$}} {{.Key}} {{$.x}}`, true},
		{`{{print 1 "a" 2}} {{println "x"}} {{printf "%05d|%s|%v" 42 "s" (get "/app/config/port")}}`, true},
		{`{{range seq 1 3}}{{.}}{{end}} {{range 3}}{{.}}{{end}} {{range 0}}x{{else}}none{{end}}`, true},
		{`{{range $i, $e := 3}}{{end}}`, false},
		{`{{(get "/app/config/port").Value}} {{(get "/app/config/port").Key | base}}`, true},
		{`{{getv "/missing"}}`, false},
		{`{{getv "/missing" "fallback"}}`, true},
		{`{{get "/app/config/port" | printf "%v"}}`, true},
		{`{{range gets "/app/servers/*"}}{{.Key | base | printf "%s!" | toUpper}}{{end}}`, true},
		{`{{.Key.Value}} {{.Nope}}`, true},
		{`{{range gets "/app/servers/*"}}{{.Nope}}{{end}}`, false},
		{`{{define "x"}}a{{end}}{{template "x"}}`, false},
		{`{{html "<a>"}}`, false},
		{`{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}`, true},
		{`{{$x := 1}}{{range seq 1 2}}{{$x = .}}{{end}}{{$x}}`, true},
		{`{{range gets "/app/servers/*"}}{{with .Value}}{{.}}{{end}}{{end}}`, true},
		{`{{reverse (ls "/app/servers")}} {{sortByLength (ls "/lengths")}} {{sortKVByLength (gets "/lengths/*")}}`, true},
		{`{{datetime}} {{getenv "HOSTNAME"}} {{getenv "NOPE" "d"}}`, true},
		{`{{trimSuffix ":80" "host:80"}} {{replace "a-b-c" "-" "+" -1}} {{contains "abc" "b"}}`, true},
		{`{{div 1 0}}`, false},
		{`{{base64Decode (getv "/app/config/b64")}} {{atoi (getv "/app/config/port") | add 1}}`, true},
		{`{{upper "x"}} {{default "d" ""}} {{list 1 2 3}} {{dict "a" 1}} {{"abc" | trunc 2}}`, true},
		{`{{range $k, $v := dict "b" 2 "a" nil}}{{$k}}{{$v}}{{end}}`, false},
		{`{{range (jsonArray "[1,null]")}}{{.}}{{end}}`, false},
		{`{{index (jsonArray "[1,null]") 1}}`, true},
		{`{{$x := "a"}}{{$x | eq "a"}}`, true},
		{`{{range $p := gets "/app/servers/*"}}{{toUpper (base $p.Key)}} {{(dir $p.Key)}} {{"lit"}} {{base64Encode .Value}}{{end}}`, true},
		{`{{range ls "/app/servers"}}{{base .Value}}{{end}}`, false},
		{`{{printf "%s|%v" . 1}} {{printf "%d"}} {{getv (printf "/app/config/%s" "port")}}`, true},
		{`{{range gets "/app/config/*"}}{{getv (printf "%s" .Key) "d"}} {{getenv .Value}}{{end}}`, true},
	}
	s := storeOf(testKeys())
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			tmpl, err := Parse("fast.tmpl", tt.text, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if done := checkSame(t, tt.text, tmpl, s); done != tt.fast {
				t.Errorf("fast path completed: %v, want %v", done, tt.fast)
			}
			// Execute gives the same output or error either way.
			r := runBoth(t, tmpl, s)
			out, err := tmpl.Execute(context.Background(), s)
			if (err != nil) != (r.slowErr != nil) || (err != nil && err.Error() != r.slowErr.Error()) {
				t.Fatalf("Execute error %v, text/template error %v", err, r.slowErr)
			}
			if err == nil && !bytes.Equal(out, r.slow) {
				t.Fatalf("Execute gave %q, text/template %q", out, r.slow)
			}
		})
	}
}

// TestFastPathErrorsAreTextTemplates checks that an error met on the fast
// path reaches the caller in text/template's words, with the line.
func TestFastPathErrorsAreTextTemplates(t *testing.T) {
	s := storeOf(testKeys())
	_, err := renderString(t, "a\n{{range gets \"/app/servers/*\"}}{{getv \"/missing/key\"}}{{end}}", s, testOptions())
	if err == nil || !strings.Contains(err.Error(), "test.tmpl:2:") || !strings.Contains(err.Error(), "/missing/key") {
		t.Fatalf("error %v, want one naming test.tmpl:2 and /missing/key", err)
	}
	tmpl, err := Parse("test.tmpl", `{{range gets "/app/servers/*"}}{{getv "/missing/key"}}{{end}}`, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.prog == nil {
		t.Fatal("template did not compile for the fast path")
	}
	_, err = tmpl.Execute(context.Background(), s)
	if !errors.Is(err, kv.ErrNotExist) {
		t.Fatalf("error %v does not wrap kv.ErrNotExist", err)
	}
}

// TestGoldenTemplatesTakeTheFastPath keeps the templates users write on
// the fast path: a change that sent them back to text/template would still
// pass every other test, only slower.
func TestGoldenTemplatesTakeTheFastPath(t *testing.T) {
	for _, name := range []string{"seed_haproxy", "seed_gets", "seed_ls", "seed_lsdir", "seed_range", "nginx_upstreams"} {
		tmpl, err := ParseFile("testdata/golden/"+name+".tmpl", testOptions())
		if err != nil {
			t.Fatal(err)
		}
		keys := testKeys()
		if strings.HasPrefix(name, "seed_") {
			keys = seedKeys()
		}
		if !checkSame(t, name, tmpl, storeOf(keys)) {
			t.Errorf("%s: the fast path did not complete", name)
		}
	}
}

// TestFastPathTurnsItselfOff checks that a template whose data the fast
// path keeps giving up on stops being tried (it would run twice every
// time), while one that fails on a missing key or succeeds stays on it;
// the output is text/template's throughout.
func TestFastPathTurnsItselfOff(t *testing.T) {
	s := storeOf(testKeys())
	ctx := context.Background()
	tests := []struct {
		name, text string
		off        bool
	}{
		{"value it does not handle", `{{range jsonArray "[1,null]"}}{{.}};{{end}}`, true},
		{"missing key", `{{getv "/no/such/key"}}`, false},
		{"handled", `{{range gets "/app/servers/*"}}{{base .Key}}{{end}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse("off.tmpl", tt.text, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.prog == nil {
				t.Fatal("template did not compile for the fast path")
			}
			want := runBoth(t, tmpl, s)
			for i := range maxSlowRuns + 2 {
				out, err := tmpl.Execute(ctx, s)
				if (err != nil) != (want.slowErr != nil) || (err == nil && !bytes.Equal(out, want.slow)) {
					t.Fatalf("execution %d: %q, %v; text/template gives %q, %v", i, out, err, want.slow, want.slowErr)
				}
			}
			if got := tmpl.fastOff.Load(); got != tt.off {
				t.Errorf("fast path off = %v, want %v", got, tt.off)
			}
		})
	}
}
