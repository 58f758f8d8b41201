package render

import (
	"testing"

	"github.com/etcdconfd/confd/internal/dnstest"
	"github.com/etcdconfd/confd/pkg/kv"
)

// TestFastPathCases runs edge cases of text/template's semantics through
// both execution paths. A case fails when the fast path completes with
// output other than text/template's, or completes where text/template
// fails; giving up is always allowed.
func TestFastPathCases(t *testing.T) {
	std := storeOf(testKeys())
	custom := kv.FromMap(1, map[string]string{
		"/j/null":  `{"a":null,"b":{"c":null},"n":1}`,
		"/j/arr":   `[{"k":"v"},1,"s",true,null]`,
		"/j/nums":  `[1,2.5,1e21]`,
		"/x/a":     "1",
		"/x/b":     "2",
		"/x/c/d":   "3",
		"/y/empty": "",
	}).All()
	tests := []struct {
		name string
		text string
		s    Store
	}{
		// ---- cases the fast path once got wrong ----
		// break in the else of an inner range: text/template's inner
		// walkRange recovers walkBreak, so the outer loop continues.
		{"break-in-inner-range-else", `{{range seq 1 3}}{{range ls "/none"}}{{else}}{{break}}{{end}}{{.}}{{end}}`, std},
		{"break-in-inner-range-else-if", `{{range seq 1 3}}{{range ls "/none"}}x{{else}}{{if true}}{{break}}{{end}}{{end}}[{{.}}]{{end}}`, std},
		// a declaration in a short-circuited and/or argument never runs in
		// text/template, but has its own slot in the fast path.
		{"decl-in-short-circuit-or-shadow", `{{$x := 1}}{{or 1 ($x := 2)}}{{$x}}`, std},
		{"decl-in-short-circuit-and-shadow", `{{$x := "outer"}}{{and 0 ($x := "inner")}}{{$x}}`, std},
		{"decl-in-short-circuit-or-undefined", `{{or 1 ($x := 2)}}{{$x}}`, std},
		{"decl-in-short-circuit-if", `{{if and false ($y := 1)}}{{else}}{{$y}}{{end}}`, std},
		// the printf string fast path compiles its arguments a second time
		// after the whole action was compiled: a variable read before a
		// parenthesized declaration of the same name in the same action
		// resolves to the new declaration's slot.
		{"printf-var-before-paren-decl", `{{$x := "outer"}}{{printf "%s %s" $x ($x := "inner")}}`, std},
		{"printf-pair-before-paren-decl", `{{$p := get "/app/config/port"}}{{printf "%s %s" $p.Key ($p := get "/app/config/csv").Key}}`, std},
		// ... and a declaration inside printf's arguments gets two slots;
		// when the outer function is not one stringPipe calls, the general
		// path sets the first and later reads see the second.
		{"printf-decl-under-atoi", `{{atoi (printf "%d" ($x := 5))}}{{$x}}`, std},
		{"printf-decl-under-quote", `{{quote (printf "%s" ($x := "a"))}}{{$x}}`, std},
		// range with the same variable twice and '=': text/template sets
		// the index and then the element.
		{"range-assign-same-var-twice", `{{$i := 0}}{{range $i, $i = seq 5 6}}{{$i}};{{end}}{{$i}}`, std},

		// ---- more divergence variants ----
		{"decl-in-short-circuit-if-body", `{{if or 1 ($y := 2)}}{{$y}}{{end}}`, std},
		{"decl-in-short-circuit-range-iter", `{{$x := "o"}}{{range seq 1 2}}{{or (eq . 1) ($x := .)}}{{$x}};{{end}}`, std},
		{"break-inner-else-in-outer-else", `{{range seq 1 2}}{{if false}}{{else}}{{range list}}{{else}}{{break}}{{end}}{{end}}{{.}}{{end}}`, std},

		// ---- split-out cases so that the fast path completes ----
		{"index-split", `{{index (split "a:b" ":") 1}} {{index (list 1 2) 0}} {{index (seq 1 3) 2}}`, std},
		{"index-pairs", `{{index (gets "/x/*") 0}} {{(index (gets "/x/*") 1).Key}} {{1 | index (list 5 6)}}`, custom},
		{"index-string", `{{index "abc" 1}}`, std},
		{"dict-set", `{{$d := dict "a" 1}}{{$_ := set $d "b" 2}}{{$d}}{{$_ := unset $d "a"}}{{$d}}`, std},
		{"sprig-variadic-ok", `{{coalesce "" 0 "x"}} {{ternary "a" "b" true}} {{cat "a" 1}} {{join "," (list 1 2)}} {{quote "a" 1}} {{nospace "a b"}}`, std},
		{"sprig-slice", `{{slice (list 1 2 3) 1}} {{slice (list 1 2 3) 1 2}}`, std},
		{"numbers-more", `{{.5}} {{5.}} {{1e-3}} {{-.5}} {{+1}} {{1+2i}} {{0x_1}} {{0.}} {{-0.0}}`, std},
		{"numbers-typed-ok", `{{add 'a' 1}} {{add 0x10 1}} {{mul 3 -2}} {{sub 0b11 0o7}}`, std},
		{"numbers-float-param-ok", `{{round 3.14159 2}} {{round 3.14159 2 0.5}}`, std},
		{"println-print-empty", `{{println}}|{{print}}|{{"%d" | printf}}|{{printf "%%"}}`, std},
		{"eq-final", `{{"a" | eq "b" "a"}}{{"a" | eq "a"}}{{1 | ne 2}}`, std},
		{"json-null-map-print", `{{json (getv "/j/null")}}{{jsonArray (getv "/j/arr")}}`, custom},
		{"with-pointer", `{{if semver "1.2.3"}}t{{end}}{{with semver "1.2.3"}}w{{end}}`, std},
		{"fromJson-any", `{{(fromJson "{\"a\":1}").a}}{{fromJson "null"}}{{print (fromJson "null")}}`, std},
		{"map-field-Key", `{{$m := dict "Key" "k" "Value" "v"}}{{$m.Key}}{{$m.Value}}{{range list $m}}{{.Key}}{{base .Value}}{{end}}`, std},
		{"or-pair-dict", `{{range gets "/x/*"}}{{$m := dict "p" (or .)}}{{typeOf $m.p}}{{end}}`, custom},
		{"printf-decl-then-use", `{{printf "%s %s" ($x := "a") $x}}{{$x}}`, std},
		{"printf-assign", `{{$x := 1}}{{printf "%v" ($x = 2)}}{{$x}}{{quote (printf "%v" ($x = 3))}}{{$x}}`, std},
		{"range-map-1var-int", `{{range $v := dict "b" 2 "a" 1}}{{$v}}{{end}}{{range $i := 3}}{{$i}}{{else}}x{{end}}`, std},

		// ---- variables, scoping, shadowing ----
		{"shadow-if", `{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}`, std},
		{"shadow-else", `{{$x := 1}}{{if false}}{{$x := 2}}{{else}}{{$x}}{{end}}`, std},
		{"assign-in-if", `{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}`, std},
		{"assign-in-with-pipe", `{{$x := 1}}{{with $x = ""}}a{{else}}b{{$x}}{{end}}{{$x}}`, std},
		{"if-decl-seen-by-else", `{{if $v := getv "/app/config/empty"}}{{$v}}{{else}}[{{$v}}]{{end}}`, std},
		{"with-decl-else-with", `{{with $a := ""}}{{else with $b := "x"}}{{$a}}{{$b}}{{.}}{{end}}`, std},
		{"else-if-chain-vars", `{{if $a := 0}}a{{else if $b := ""}}b{{else if $c := "c"}}{{$a}}{{$b}}{{$c}}{{end}}`, std},
		{"range-1var", `{{range $p := gets "/app/servers/*"}}{{$p.Key}} {{$p}};{{end}}`, std},
		{"range-2var", `{{range $i, $p := gets "/app/servers/*"}}{{$i}}{{$p.Value}};{{end}}`, std},
		{"range-assign-1", `{{$e := 0}}{{range $e = seq 1 3}}{{end}}{{$e}}`, std},
		{"range-assign-2", `{{$i := 0}}{{$e := 0}}{{range $i, $e = seq 5 7}}{{end}}{{$i}} {{$e}}`, std},
		{"range-assign-empty", `{{$e := 0}}{{range $e = ls "/none"}}{{end}}{{$e}}`, std},
		{"range-assign-break", `{{$e := 0}}{{range $e = seq 1 3}}{{if eq $e 2}}{{break}}{{end}}{{end}}{{$e}}`, std},
		{"range-assign-in-body", `{{$e := 0}}{{range $e = seq 1 3}}{{$e = 10}}{{end}}{{$e}}`, std},
		{"range-assign-map", `{{$k := ""}}{{$v := ""}}{{range $k, $v = dict "b" 2 "a" 1}}{{end}}{{$k}}{{$v}}`, std},
		{"range-else-sees-decl", `{{range $i, $e := ls "/none"}}x{{else}}{{$i}}|{{$e}}{{end}}`, std},
		{"range-body-shadow", `{{range $i, $e := seq 1 2}}{{$e := 9}}{{$e}}{{$i}}{{end}}`, std},
		{"range-pipe-uses-old", `{{$e := 3}}{{range $e := seq 1 $e}}{{$e}}{{end}}`, std},
		{"decl-uses-old", `{{$x := 1}}{{$x := add $x 1}}{{$x}}`, std},
		{"range-dup-decl", `{{range $i, $i := seq 5 6}}{{$i}};{{end}}`, std},
		{"paren-decl-arg-order", `{{$x := 1}}{{print $x ($x := 2) $x}}{{$x}}`, std},
		{"paren-decl-final", `{{($x := "a") | printf "%s%s" $x}}`, std},
		{"paren-decl-chain", `{{($p := get "/app/config/port").Key}}{{$p.Value}}`, std},
		{"paren-decl-eq", `{{eq 1 ($x := 2) ($x := 1)}}{{$x}}`, std},
		{"paren-decl-and-no-short", `{{and 1 ($x := 2)}}{{$x}}`, std},
		{"dollar-assign", `{{$ = 1}}{{$}}`, std},
		{"dollar", `{{$}}{{.}}{{$.x}}{{$.x.y}}`, std},
		{"assign-pair-outside", `{{$p := 0}}{{range $p = gets "/app/servers/*"}}{{end}}{{$p}} {{$p.Key}}`, std},
		{"assign-dot-pair", `{{$x := 0}}{{range gets "/app/servers/*"}}{{$x = .}}{{end}}{{$x.Value}}{{printf "%T" $x}}`, std},

		// ---- break / continue ----
		{"continue-inner-else", `{{range seq 1 3}}{{range ls "/none"}}{{else}}{{continue}}{{end}}x{{end}}`, std},
		{"break-nested", `{{range seq 1 3}}{{range seq 1 3}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}};{{end}}`, std},
		{"continue-with", `{{range gets "/app/servers/*"}}{{with .Value}}{{continue}}{{end}}x{{end}}y`, std},
		{"break-in-with-else", `{{range seq 1 3}}{{with ""}}{{else}}{{break}}{{end}}{{.}}{{end}}z`, std},

		// ---- nil / missing ----
		{"json-null-field", `{{$d := json (getv "/j/null")}}{{$d.a}}|{{print $d.a}}|{{$d.missing}}|{{print $d.missing}}|{{$d.b.c}}`, custom},
		{"json-null-chain", `{{$d := json (getv "/j/null")}}{{$d.a.x}}`, custom},
		{"json-missing-chain", `{{$d := json (getv "/j/null")}}{{$d.missing.x}}|{{print $d.missing.x}}`, custom},
		{"json-null-args", `{{$d := json (getv "/j/null")}}{{and $d.a 1}}|{{or $d.a "d"}}|{{not $d.a}}|{{not $d.missing}}|{{printf "%v" $d.a}}`, custom},
		{"json-null-with", `{{$d := json (getv "/j/null")}}{{with $d.a}}x{{else}}y{{end}}{{if $d.missing}}x{{else}}y{{end}}`, custom},
		{"json-null-default", `{{$d := json (getv "/j/null")}}{{default "d" $d.a}}{{default "e" $d.missing}}{{typeOf $d.missing}}{{kindOf $d.a}}`, custom},
		{"json-null-pipe-final", `{{$d := json (getv "/j/null")}}{{$d.a | print}}{{$d.missing | printf "%v"}}`, custom},
		{"json-null-var", `{{$d := json (getv "/j/null")}}{{$v := $d.a}}{{$v}}{{print $v}}`, custom},
		{"json-null-in-range", `{{$d := json (getv "/j/null")}}{{range $k, $v := $d}}{{$k}}={{$v}};{{end}}`, custom},
		{"json-arr-elems", `{{range jsonArray (getv "/j/arr")}}{{.}};{{end}}`, custom},
		{"json-arr-index", `{{$a := jsonArray (getv "/j/arr")}}{{index $a 0}}|{{(index $a 0).k}}|{{index $a 4}}|{{print (index $a 4)}}|{{len $a}}`, custom},
		{"json-null-map", `{{$m := json "null"}}{{$m.a}}|{{index $m "a"}}|{{len $m}}|{{range $m}}x{{else}}e{{end}}`, custom},
		{"json-null-array", `{{$a := jsonArray "null"}}{{$a}}|{{len $a}}|{{if $a}}t{{else}}f{{end}}`, custom},
		{"first-empty", `{{list | first}}|{{list | first | print}}|{{first list}}|{{print (first list)}}`, std},
		{"missing-field-print", `{{print .x}}{{printf "%v|%s" . $}}`, std},

		// ---- printing ----
		{"print-json", `{{$d := json (getv "/app/config/json")}}{{$d}}|{{$d.tags}}|{{$d.port}}|{{printf "%T" $d.port}}`, std},
		{"print-nums", `{{jsonArray (getv "/j/nums")}}{{range jsonArray (getv "/j/nums")}};{{.}}{{end}}`, custom},
		{"print-pairs", `{{gets "/x/*"}}{{get "/x/a"}}{{range gets "/x/*"}}{{.}}{{print .}}{{println .}}{{end}}`, custom},
		{"print-time", `{{now}}|{{datetime}}|{{now | date "2006-01-02"}}|{{toDate "2006-01-02" "2024-02-03"}}|{{now | dateModify "1h"}}`, std},
		{"print-time-if", `{{if now}}t{{end}}{{not now}}{{printf "%v" now}}`, std},
		{"print-int64", `{{add1 1}}{{if add1 -1}}t{{else}}f{{end}}{{len (until 3)}}`, std},
		{"print-complex", `{{1i}}{{if 0i}}t{{else}}f{{end}}{{print 2i}}`, std},
		{"print-list-dict", `{{list 1 "a" 2.5 true}}|{{dict "b" 1 "a" (list 1)}}|{{splitn "," 3 "a,b,c"}}`, std},
		{"print-bytes-ish", `{{b64enc "x"}}{{toJson (dict "a" 1)}}{{toJson .}}`, std},
		{"print-semver", `{{semver "1.2.3"}}`, std},
		{"print-err-any", `{{regexFind "a" "xay"}}`, std},
		{"print-map-string-string", `{{$m := splitn "," 3 "a,b,c"}}{{$m._0}}{{$m.x}}{{index $m "_1"}}{{index $m "zz"}}{{range $k, $v := $m}}{{$k}}{{$v}}{{end}}`, std},

		// ---- builtins ----
		{"and-or", `{{and 1 0 2}} {{or 0 "" "x"}} {{and 1 "a"}} {{or 0 ""}} {{"v" | and 1}} {{"" | or 0}} {{1 | and}}`, std},
		{"and-or-pair", `{{range gets "/x/*"}}{{with and 1 .}}{{printf "%T" .}}{{.Key}}{{end}}{{or . 1}}{{end}}`, custom},
		{"eq-ne", `{{eq 1 1 2}} {{eq 1 2 1}} {{eq "a" "b"}} {{ne true false}} {{eq true true}} {{eq 1 1 "x"}}`, std},
		{"eq-bad-later", `{{eq 1 2 "x"}}`, std},
		{"lt-etc", `{{lt 1 2}} {{le "b" "a"}} {{gt 3 2}} {{ge 2 2}} {{lt "a" "b"}} {{2 | lt 1}}`, std},
		{"lt-bool", `{{lt true false}}`, std},
		{"eq-float", `{{eq 1.5 1.5}}{{eq 1.0 1}}`, std},
		{"eq-json-num", `{{$d := json (getv "/app/config/json")}}{{eq $d.port 5432}}`, std},
		{"eq-pair", `{{range gets "/x/*"}}{{eq . .}}{{end}}`, custom},
		{"eq-pair-key", `{{range gets "/x/*"}}{{eq .Key "/x/a"}}{{eq .Value "2" "1"}}{{end}}`, custom},
		{"not-len", `{{not ""}} {{not 1}} {{len "héllo"}} {{"x" | len}} {{len (gets "/x/*")}} {{len (dict "a" 1)}}`, custom},
		{"len-nil", `{{$d := json (getv "/j/null")}}{{len $d.missing}}`, custom},
		{"index-various", `{{index (split "a:b" ":") 1}} {{index (list 1 2) 0}} {{index (seq 1 3) 2}} {{index "abc" 1}} {{index (gets "/x/*") 0}}`, custom},
		{"index-oob", `{{index (list 1) 3}}`, std},
		{"index-one", `{{index "x"}}{{range gets "/x/*"}}{{index .}}{{end}}`, custom},
		{"index-float", `{{index (list 1 2) 1.0}}`, std},
		{"print-funcs", `{{print 1 2}} {{print "a" 1 2 "b"}} {{println 1 "a"}} {{printf "%d %s %v %T" 1 "s" 2.5 'a'}} {{printf "%d"}}`, std},
		// the strings of a []string are passed by reference
		{"range-strings-uses", `{{range $i, $n := ls "/x"}}{{$i}}:{{.}}|{{$n}}|{{if .}}t{{end}}|{{with .}}{{.}}{{end}}|{{eq . "a"}}|{{len .}}|{{not .}}|{{and 1 .}}|{{or . 2}}|{{printf "%v %q %T %s" . . . .}}|{{. | printf "%s"}}|{{base .}}|{{index (ls "/x") $i}};{{end}}`, custom},
		{"range-strings-var-after", `{{$last := ""}}{{range ls "/x"}}{{$last = .}}{{end}}{{$last}}{{printf "%T" $last}}{{$w := ""}}{{range $e := ls "/x"}}{{$w = $e}}{{end}}{{$w}}`, custom},
		{"range-strings-empty", `{{range ls "/y"}}[{{.}}]{{if .}}t{{else}}f{{end}}{{len .}}{{end}}`, custom},
		{"range-strings-nested", `{{range ls "/x"}}{{$d := .}}{{range ls (printf "/x/%s" .)}}{{$d}}/{{.}};{{end}}{{end}}`, custom},
		{"range-strings-field", `{{range ls "/x"}}{{.Key}}{{end}}`, custom},
		{"range-strings-range-dot", `{{range ls "/x"}}{{range .}}{{.}}{{end}}{{end}}`, custom},
		{"range-strings-compare", `{{range ls "/x"}}{{lt . "b"}}{{ne . "c"}}{{if eq . "a" "b"}}ab{{end}}{{end}}`, custom},
		// printf of texts and %s verbs alone joins strings without fmt
		{"printf-concat-dot", `{{range ls "/app/servers"}}{{getv (printf "/app/servers/%s" .)}};{{printf "%s=%s|" . .}}{{end}}`, std},
		{"printf-concat-pairs", `{{range gets "/x/*"}}{{printf "%s -> %s (100%%)" .Key .Value}};{{end}}{{printf "no verbs"}}{{printf ""}}{{printf "%%"}}`, custom},
		{"printf-concat-dot-not-string", `{{range seq 1 2}}{{printf "n%s" .}}{{end}}{{printf "%s" .}}{{range gets "/x/*"}}{{printf "[%s]" .}}{{end}}`, custom},
		{"printf-concat-mismatch", `{{printf "%s %s" "a"}}|{{printf "%s" "a" "b"}}|{{printf "%5s|%-3s|%q" "a" "b" "c"}}|{{printf "%s%"  "a"}}|{{printf "%"}}`, std},
		{"printf-concat-pair-var", `{{$p := get "/app/config/port"}}{{printf "%s:%s" $p.Key $p.Value}}{{$q := 1}}{{printf "%s" $q}}`, std},
		{"printf-final", `{{"a" | printf "%s-%s" "b"}}{{printf "%v" .}}{{printf "%s" $}}`, std},
		{"printf-pair", `{{range gets "/x/*"}}{{printf "%v|%T|%s" . . .Key}}{{. | printf "%v"}}{{end}}`, custom},
		{"printf-nonconst", `{{$f := "%s!"}}{{printf $f "x"}}{{printf (print "%d") 1}}`, std},
		{"printf-in-getv", `{{range ls "/x"}}{{getv (printf "/x/%s" .) "dflt"}};{{end}}`, custom},

		// ---- numbers ----
		{"numbers", `{{1}} {{-1}} {{1.5}} {{1.0}} {{0x10}} {{0X1F}} {{'a'}} {{'\n'}} {{1e3}} {{1E3}} {{0x1p4}} {{1_000}} {{0b101}} {{0o17}} {{017}}`, std},
		{"numbers-print", `{{print 1.0 1e3 0x10 'a'}} {{printf "%T %T %T" 1e3 0x1p4 'a'}}`, std},
		{"numbers-typed", `{{add 'a' 1}} {{add 0x10 1}} {{add 1.0 2}} {{add 1e2 1}} {{mul 3 -2}}`, std},
		{"numbers-big", `{{9223372036854775807}} {{-9223372036854775808}}`, std},
		{"numbers-float-param", `{{round 3.14159 2}} {{round 3.14159 2 0.5}} {{round 2.5 0 1}}`, std},
		{"numbers-trunc", `{{trunc 2 "abc"}}{{"abcd" | trunc 3}}{{substr 1 3 "abcd"}}`, std},

		// ---- pipelines / chains / fields ----
		{"chain-get", `{{(get "/app/config/port").Value}} {{(get "/app/config/port").Key | base}} {{(json (getv "/app/config/json")).host}}`, std},
		{"chain-dot", `{{range gets "/x/*"}}{{(.).Key}}{{(.Key)}}{{($).x}}{{end}}`, custom},
		{"chain-var", `{{$d := json (getv "/app/config/json")}}{{($d).host}}{{($d).tags}}`, std},
		{"fields-on-maps", `{{$d := dict "a" (dict "b" "c")}}{{$d.a.b}}{{$d.a.zz}}{{$d.zz.yy}}`, std},
		{"final-to-nonfunc", `{{1 | print | len}}`, std},
		{"final-to-var", `{{$x := 1}}{{2 | $x}}`, std},
		{"final-to-paren", `{{1 | (print)}}`, std},
		{"final-to-field", `{{$d := json (getv "/app/config/json")}}{{1 | $d.host}}`, std},
		{"pipe-multi", `{{range gets "/x/*"}}{{.Key | base | printf "%s!" | toUpper}}{{.Value | atoi | add 1}}{{end}}`, custom},
		{"pipe-getv-final", `{{"/x/a" | getv}}{{"d" | getv "/missing"}}{{getv "/missing" "a" "b"}}`, custom},

		// ---- pairs passed to functions ----
		{"pair-to-funcs", `{{range gets "/x/*"}}{{typeOf .}} {{kindOf .}} {{toJson .}} {{list . | len}} {{default "d" .}} {{(dict "p" .).p.Key}} {{(map "p" .).p.Value}} {{empty .}};{{end}}`, custom},
		{"pair-var-to-funcs", `{{range $i, $p := gets "/x/*"}}{{typeOf $p}}{{toJson $p}}{{kindIs "struct" $p}}{{deepEqual $p $p}}{{end}}`, custom},
		{"pair-reverse", `{{reverse (gets "/x/*")}}{{range reverse (gets "/x/*")}}{{.Key}}{{end}}{{sortKVByLength (gets "/x/*")}}`, custom},
		{"pair-with", `{{with get "/x/a"}}{{.Key}}{{.Value}}{{typeOf .}}{{end}}`, custom},

		// ---- string fast path ----
		{"string-path", `{{range gets "/x/*"}}{{base .Key}}{{toUpper (base .Key)}}{{dir .Key}}{{"lit"}}{{getv .Key}}{{base64Encode .Value}}{{end}}`, custom},
		{"string-path-var", `{{range $p := gets "/x/*"}}{{$p.Key}}{{base $p.Value}}{{$.Key}}{{end}}`, custom},
		{"string-path-nonpair", `{{range ls "/x"}}{{.Key}}{{end}}`, custom},
		{"string-path-kvpair-value", `{{with get "/x/a"}}{{.Key}}{{base .Key}}{{end}}`, custom},
		{"string-path-getv-missing", `{{range gets "/x/*"}}{{getv (printf "%s/zz" .Key)}}{{end}}`, custom},
		{"string-path-getv-missing-dflt", `{{range gets "/x/*"}}{{getv (printf "%s/zz" .Key) "d"}}{{end}}`, custom},
		{"string-path-other-sig", `{{range gets "/x/*"}}{{quote .Key}}{{atoi .Value}}{{trim .Value}}{{end}}`, custom},
		{"string-path-paren", `{{range gets "/x/*"}}{{(.Key)}}{{(base .Key)}}{{toUpper ((.Value))}}{{end}}`, custom},

		// ---- range kinds ----
		{"range-ints", `{{range 3}}{{.}}{{end}} {{range 0}}x{{else}}none{{end}} {{range -2}}x{{else}}neg{{end}} {{range $i := 2}}{{$i}}{{end}}`, std},
		{"range-int-assign", `{{$i := 9}}{{range $i = 2}}{{end}}{{$i}}`, std},
		{"range-int-2var", `{{range $i, $e := 3}}{{end}}`, std},
		{"range-int64", `{{range add1 2}}{{.}}{{end}}`, std},
		{"range-any", `{{range $i, $e := list 1 "a" 2.5}}{{$i}}{{$e}}{{printf "%T" .}};{{end}}`, std},
		{"range-any-nil-break", `{{range jsonArray "[1,null]"}}{{.}}{{break}}{{end}}`, std},
		{"range-map-any", `{{range $k, $v := dict "b" 2 "a" 1 "c" (list 1)}}{{$k}}={{$v}};{{end}}{{range dict "x" 1}}{{.}}{{end}}`, std},
		{"range-map-string", `{{range $k, $v := splitn "," 12 "a,b,c,d,e,f,g,h,i,j,k,l"}}{{$k}}={{$v}};{{end}}`, std},
		{"range-nil", `{{range $d := json "null"}}x{{else}}empty{{end}}{{range .}}x{{else}}nil{{end}}`, std},
		{"range-nested-slices", `{{range list (list 1) (list 2)}}{{.}}{{end}}`, std},
		{"range-until", `{{range until 3}}{{.}}{{end}}{{range $i, $e := seq 3 5}}{{$i}}:{{$e}} {{end}}`, std},
		{"range-string", `{{range "abc"}}{{.}}{{end}}`, std},
		{"range-pair", `{{range $p := gets "/x/*"}}{{range $p}}{{end}}{{end}}`, custom},

		// ---- sprig functions with unusual signatures ----
		{"sprig-variadic", `{{coalesce "" 0 "x"}} {{ternary "a" "b" true}} {{cat "a" 1 nil}} {{join "," (list 1 2)}} {{quote "a" 1}} {{nospace "a b"}}`, std},
		{"sprig-errors", `{{fail "boom"}}`, std},
		{"sprig-must", `{{mustFirst list}}`, std},
		{"sprig-panic", `{{"a" | repeat -1}}`, std},
		{"sprig-hasKey", `{{hasKey (dict "a" 1) "a"}}{{pluck "a" (dict "a" 1) (dict "a" 2)}}{{keys (dict "a" 1)}}`, std},
		{"sprig-env", `{{env "HOSTNAME"}}{{expandenv "$HOSTNAME-x"}}{{getenv "EMPTY" "dd"}}{{getenv "NOPE"}}`, std},
		{"sprig-list-ops", `{{append (list 1) 2}}{{prepend (list 1) 0}}{{concat (list 1) (list 2)}}{{uniq (list 1 1 2)}}{{without (list 1 2) 1}}{{has 1 (list 1)}}{{sortAlpha (list "b" "a")}}`, std},
		{"sprig-dict-ops", `{{$d := dict "a" 1}}{{$_ := set $d "b" 2}}{{$d}}{{$_ := unset $d "a"}}{{$d}}{{get $d "b"}}`, std},
		{"sprig-dict-get-override", `{{$d := dict "a" 1}}{{dig "a" "d" $d}}`, std},
		{"sprig-numbers", `{{add1 1}} {{max 1 2 3}} {{min 1 2}} {{floor 1.5}} {{ceil 1.5}} {{int "12"}} {{int64 "12"}} {{float64 "1.5"}} {{toString 1}}`, std},
		{"sprig-regex", `{{regexMatch "^a" "abc"}}{{regexFindAll "a" "aaa" -1}}{{regexReplaceAll "a" "aba" "x"}}{{regexSplit "," "a,b" -1}}`, std},
		{"sprig-deep", `{{deepCopy (dict "a" (list 1))}}{{toPrettyJson (list 1)}}{{fromJson "{\"a\":null}"}}`, std},
		{"sprig-nil-args", `{{default "d" .}}{{empty .}}{{toJson .}}{{typeOf .}}{{coalesce . "c"}}`, std},
		{"sprig-kindof", `{{kindOf 1}}{{kindOf 1.5}}{{kindOf "a"}}{{kindOf (list)}}{{kindOf (dict)}}{{kindOf true}}`, std},
		{"sprig-tuple", `{{tuple 1 "a"}}{{list}}{{dict}}`, std},
		{"sprig-semver-cmp", `{{semverCompare ">=1.0" "1.2.3"}}`, std},
		{"sprig-durations", `{{duration 90}}{{durationRound "2h5m"}}{{(toDate "2006-01-02" "2024-02-03").Year}}`, std},
		{"sprig-int-arg-conv", `{{until 2}}{{untilStep 0 6 2}}{{randInt 0 1}}`, std},
		{"sprig-bool", `{{ternary 1 2 false}}{{and (hasPrefix "a" "abc") (hasSuffix "c" "abc")}}`, std},

		// ---- confd functions ----
		{"confd-funcs", `{{split "a,b" ","}}{{join (split "a,b" ",") "-"}}{{contains "abc" "b"}}{{replace "aaa" "a" "b" 2}}{{trimSuffix "x" "ax"}}{{parseBool "true"}}{{div 7 2}}{{mod 7 2}}{{sub 1 2}}`, std},
		{"confd-map-odd", `{{map "a"}}`, std},
		{"confd-fileExists", `{{fileExists "/etc/haproxy/haproxy.cfg"}}{{fileExists "/nope"}}`, std},
		{"confd-fileExists-denied", `{{fileExists "/denied/file"}}`, std},
		{"confd-lookup", `{{range lookupSRV "a" "tcp" "x"}}{{.Target}}{{end}}`, std},
		{"confd-exists", `{{exists "/x/a"}}{{exists "/nope"}}{{if exists "/x/a"}}y{{end}}`, custom},
		{"confd-getvs-lsdir", `{{getvs "/x/*"}}{{lsdir "/x"}}{{ls "/x"}}{{range lsdir "/"}}{{.}}{{end}}`, custom},
		{"confd-reverse-any", `{{reverse "abc"}}{{reverse 1}}{{reverse (list 1 2)}}{{reverse (seq 1 3)}}`, std},
		{"confd-sortByLength", `{{sortByLength (list "aa" "b")}}`, std},
		{"confd-seq-big", `{{seq 0 2000000}}`, std},
		{"confd-json-bad", `{{json "{"}}`, std},

		// ---- misc ----
		{"comment-trim", "a {{- /* c */ -}} b {{- 1 -}} c", std},
		{"empty", ``, std},
		{"text-only", "hello\n", std},
		{"nested-with-range", `{{with gets "/x/*"}}{{range .}}{{.Key}}{{end}}{{len .}}{{end}}`, custom},
		{"with-else-chain", `{{with getv "/y/empty"}}a{{else with getv "/x/a"}}b{{.}}{{else}}c{{end}}`, custom},
		{"if-kinds", `{{if list}}a{{end}}{{if dict}}b{{end}}{{if 0.0}}c{{end}}{{if "0"}}d{{end}}{{if get "/x/a"}}e{{end}}{{if gets "/none/*"}}f{{end}}`, custom},
	}
	srv := dnstest.Start(t, dnsZone())
	dnsOpts := testOptions()
	dnsOpts.Resolver = srv.Resolver()
	for _, text := range []string{
		`{{range lookupSRV "etcd-client" "tcp" "example.test"}}{{.Target}}:{{.Port}};{{end}}`,
		`{{if lookupSRV "etcd-client" "tcp" "example.test"}}t{{end}}{{len (lookupSRV "etcd-client" "tcp" "example.test")}}`,
		`{{with index (lookupSRV "odd" "tcp" "example.test") 0}}{{.Port}}{{end}}`,
		`{{toJson (lookupSRV "odd" "tcp" "example.test")}}`,
		`{{lookupIP "db.example.test"}}{{range lookupIPV4 "db.example.test"}}{{.}};{{end}}{{len (lookupIPV6 "db.example.test")}}`,
		`{{lookupIP "missing.example.test"}}{{lookupSRV "none" "tcp" "example.test"}}`,
	} {
		t.Run("dns/"+text, func(t *testing.T) {
			tmpl, err := Parse("cases.tmpl", text, dnsOpts)
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.prog == nil {
				t.Logf("not compiled for the fast path")
				return
			}
			done := checkSame(t, text, tmpl, std)
			t.Logf("fast path completed: %v", done)
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse("cases.tmpl", tt.text, testOptions())
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if tmpl.prog == nil {
				t.Logf("not compiled for the fast path")
				return
			}
			done := checkSame(t, tt.text, tmpl, tt.s)
			t.Logf("fast path completed: %v", done)
		})
	}
}
