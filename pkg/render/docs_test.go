package render

import (
	"bufio"
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/sprig/v3"

	"github.com/etcdconfd/confd/internal/dnstest"
)

const docPath = "../../docs/template-functions.md"

// docBlock is one fenced block of the reference, with the headings it
// stands under.
type docBlock struct {
	lang, text string
	line       int
	h2, h3     string
}

// docData is the example data the reference lists once at the top.
type docData struct {
	Keys  map[string]string   `json:"keys"`
	Env   map[string]string   `json:"env"`
	Now   time.Time           `json:"now"`
	Files []string            `json:"files"`
	Hosts map[string][]string `json:"hosts"`
	SRV   map[string][]struct {
		Priority, Weight, Port uint16
		Target                 string
	} `json:"srv"`
}

// readDoc returns the fenced blocks of the reference and, per level-3
// heading, its bullet lines.
func readDoc(t *testing.T) (blocks []docBlock, bullets map[string][]string) {
	t.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bullets = map[string][]string{}
	var h2, h3 string
	var cur *docBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur != nil {
			if line == "```" {
				cur.text = strings.TrimSuffix(cur.text, "\n")
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			cur.text += line + "\n"
			continue
		}
		switch {
		case strings.HasPrefix(line, "```"):
			cur = &docBlock{lang: strings.TrimPrefix(line, "```"), line: n, h2: h2, h3: h3}
		case strings.HasPrefix(line, "## "):
			h2, h3 = strings.TrimPrefix(line, "## "), ""
		case strings.HasPrefix(line, "### "):
			h3 = strings.TrimPrefix(line, "### ")
		case strings.HasPrefix(line, "- "):
			bullets[h3] = append(bullets[h3], line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: unclosed code block", docPath, cur.line)
	}
	return blocks, bullets
}

// docOptions builds the environment, clock, files and DNS of the example
// data.
func docOptions(t *testing.T, d docData) Options {
	t.Helper()
	zone := dnstest.Zone{IP: map[string][]netip.Addr{}, SRV: map[string][]dnstest.SRV{}}
	for host, addrs := range d.Hosts {
		for _, a := range addrs {
			zone.IP[host] = append(zone.IP[host], netip.MustParseAddr(a))
		}
	}
	for name, recs := range d.SRV {
		for _, r := range recs {
			zone.SRV[name] = append(zone.SRV[name], dnstest.SRV{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: r.Target})
		}
	}
	return Options{
		Resolver: dnstest.Start(t, zone).Resolver(),
		Getenv:   func(k string) (string, bool) { v, ok := d.Env[k]; return v, ok },
		Now:      func() time.Time { return d.Now },
		Stat: func(name string) (fs.FileInfo, error) {
			if slices.Contains(d.Files, name) {
				return nil, nil
			}
			return nil, fs.ErrNotExist
		},
	}
}

// TestDocExamples renders every example of docs/template-functions.md
// against the example data at its top, so the reference cannot drift from
// the code.
func TestDocExamples(t *testing.T) {
	blocks, _ := readDoc(t)
	var (
		data *docData
		opts Options
	)
	examples := 0
	documented := map[string]int{}
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		switch b.lang {
		case "json":
			if b.h2 == "Example data" {
				data = new(docData)
				if err := json.Unmarshal([]byte(b.text), data); err != nil {
					t.Fatalf("%s:%d: example data: %v", docPath, b.line, err)
				}
				opts = docOptions(t, *data)
			}
			continue
		case "template":
		default:
			t.Fatalf("%s:%d: code block of kind %q; want json, template, output or error", docPath, b.line, b.lang)
		}
		if data == nil {
			t.Fatalf("%s:%d: example before the example data", docPath, b.line)
		}
		if i+1 == len(blocks) || (blocks[i+1].lang != "output" && blocks[i+1].lang != "error") {
			t.Fatalf("%s:%d: template block not followed by an output or error block", docPath, b.line)
		}
		want := blocks[i+1]
		i++
		examples++
		if b.h2 == "Store functions" || b.h2 == "Other functions" {
			documented[b.h3]++
		}
		t.Run(b.h3, func(t *testing.T) {
			tmpl, err := Parse(b.h3, b.text, opts)
			if err != nil {
				t.Fatalf("%s:%d: %v", docPath, b.line, err)
			}
			out, err := tmpl.Execute(context.Background(), storeOf(data.Keys))
			if want.lang == "error" {
				if err == nil || !strings.Contains(err.Error(), want.text) {
					t.Errorf("%s:%d: got %q, %v; want an error containing %q", docPath, b.line, out, err, want.text)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s:%d: %v", docPath, b.line, err)
			}
			if string(out) != want.text {
				t.Errorf("%s:%d:\ngot\n%s\nwant\n%s", docPath, b.line, out, want.text)
			}
		})
	}
	if examples == 0 {
		t.Fatal("no examples found")
	}

	// Every confd function has a section with an example, and every
	// section is a function.
	names := confdFuncNames()
	for _, n := range names {
		if documented[n] == 0 {
			t.Errorf("%s: no example for %s", docPath, n)
		}
	}
	for n := range documented {
		if !slices.Contains(names, n) {
			t.Errorf("%s: section %q is not a template function", docPath, n)
		}
	}
}

// confdFuncNames returns the sorted names of every confd function.
func confdFuncNames() []string {
	m := confdFuncs(Options{}.withDefaults())
	maps.Copy(m, (&binding{}).funcs())
	return slices.Sorted(maps.Keys(m))
}

// TestDocCollisionList checks that the reference lists exactly the sprig
// names that confd's functions take over.
func TestDocCollisionList(t *testing.T) {
	sp := sprig.TxtFuncMap()
	var want []string
	for _, n := range confdFuncNames() {
		if _, ok := sp[n]; ok {
			want = append(want, n)
		}
	}
	_, bullets := readDoc(t)
	var got []string
	for _, line := range bullets["Sprig names with confd's meaning"] {
		rest, ok := strings.CutPrefix(line, "- `")
		if !ok {
			t.Fatalf("bullet %q does not start with a function name", line)
		}
		name, _, _ := strings.Cut(rest, "`")
		got = append(got, name)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s lists %v as sprig names with confd's meaning; the function map has %v", docPath, got, want)
	}
}

// TestFuncMapPrecedence checks that confd's functions replace sprig's of
// the same name and that every other sprig function is present.
func TestFuncMapPrecedence(t *testing.T) {
	opts := Options{}.withDefaults()
	m := funcMap(opts)
	for name := range sprig.TxtFuncMap() {
		if _, ok := m[name]; !ok {
			t.Errorf("sprig function %s missing", name)
		}
	}
	got, err := renderString(t, `{{join (split "a:b" ":") "-"}} {{contains "abc" "b"}} {{replace "aaa" "a" "b" 2}} {{trimSuffix "a.b" ".b"}} {{seq 1 2}}`, storeOf(nil), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if want := "a-b true bba a [1 2]"; got != want {
		t.Errorf("got %q, want %q (confd's argument orders)", got, want)
	}
}
