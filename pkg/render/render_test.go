package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/etcdconfd/confd/pkg/kv"
)

func TestParseErrorsNameTemplateAndLine(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unclosed action", "line one\nline two\n{{getv \"/x\"", []string{"template: test.tmpl:3:", "unclosed action"}},
		{"unknown function", "\n{{nope \"/x\"}}", []string{"template: test.tmpl:2:", `function "nope" not defined`}},
		{"unexpected end", "{{range gets \"/a/*\"}}\n", []string{"template: test.tmpl:", "unexpected EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.tmpl", tt.text, Options{})
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tmpl")
	bad := filepath.Join(dir, "bad.tmpl")
	if err := os.WriteFile(good, []byte(`{{getv "/app/config/port"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("ok\n{{nope \"/x\"}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tmpl, err := ParseFile(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Name() != good {
		t.Errorf("Name() = %q, want %q", tmpl.Name(), good)
	}
	out, err := tmpl.Execute(context.Background(), storeOf(testKeys()))
	if err != nil || string(out) != "8080" {
		t.Errorf("Execute = %q, %v; want 8080", out, err)
	}

	_, err = ParseFile(bad, Options{})
	if err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Errorf("ParseFile(bad) error = %v, want it to name %s:2", err, bad)
	}

	_, err = ParseFile(filepath.Join(dir, "missing.tmpl"), Options{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.tmpl") {
		t.Errorf("ParseFile(missing) error = %v, want fs.ErrNotExist naming the file", err)
	}
}

func TestExecuteErrorNamesLine(t *testing.T) {
	_, err := renderString(t, "global\n  {{getv \"/missing\"}}\n", storeOf(nil), testOptions())
	if err == nil {
		t.Fatal("got no error")
	}
	for _, w := range []string{"test.tmpl:2:4", "key does not exist: /missing"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestSprigFunctionsAvailable(t *testing.T) {
	runFuncCases(t, storeOf(testKeys()), testOptions(), []funcCase{
		{"upper", `{{"abc" | upper}}`, "ABC", ""},
		{"default", `{{getv "/nope" "" | default "dflt"}}`, "dflt", ""},
		{"list", `{{list 1 2 3 | len}}`, "3", ""},
		{"dict and toJson", `{{dict "a" 1 | toJson}}`, `{"a":1}`, ""},
		{"splitList", `{{splitList ":" "a:b" | len}}`, "2", ""},
		{"trimPrefix", `{{"www.example.com" | trimPrefix "www."}}`, "example.com", ""},
		{"b64enc", `{{b64enc "x"}}`, "eA==", ""},
		{"fail", `{{fail "stop here"}}`, "", "stop here"},
	})
}

// panicStore panics in every lookup.
type panicStore struct{ Store }

func (panicStore) Get(string) (kv.KVPair, error) { panic("store exploded") }
func (panicStore) List(dir string) []string {
	n := strings.Count(dir, "never")
	return []string{fmt.Sprint(1 / n)} // a runtime error, not a plain panic
}

func TestPanicsBecomeErrors(t *testing.T) {
	tests := []struct {
		name string
		s    Store
		tmpl string
		want string
	}{
		{"store panic", panicStore{storeOf(nil)}, `{{get "/a"}}`, "store exploded"},
		{"runtime error", panicStore{storeOf(nil)}, `{{ls "/a"}}`, "integer divide by zero"},
		{"nil store", nil, `{{getv "/a"}}`, "nil pointer dereference"},
		{"index out of range", storeOf(testKeys()), `{{index (split "a" ",") 3}}`, "index out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				out []byte
				err error
			)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Execute panicked: %v", r)
					}
				}()
				tmpl, perr := Parse("p.tmpl", tt.tmpl, testOptions())
				if perr != nil {
					t.Fatal(perr)
				}
				out, err = tmpl.Execute(context.Background(), tt.s)
			}()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, %v; want an error containing %q", out, err, tt.want)
			}
			if out != nil {
				t.Errorf("got output %q alongside an error, want none", out)
			}
		})
	}
}

func TestExecuteCanceledContext(t *testing.T) {
	tmpl, err := Parse("c.tmpl", `{{getv "/app/config/port"}}`, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tmpl.Execute(ctx, storeOf(testKeys())); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// cancelingStore cancels its context on the first GetAll, as if the
// process were told to stop in the middle of a render.
type cancelingStore struct {
	Store
	cancel context.CancelFunc
}

func (s cancelingStore) GetAll(p string) ([]kv.KVPair, error) {
	s.cancel()
	return s.Store.GetAll(p)
}

func TestExecuteStopsWhenContextEnds(t *testing.T) {
	tmpl, err := Parse("c.tmpl", `{{range gets "/svc/*"}}{{.Key}}{{end}}{{range ls "/svc"}}{{.}}{{end}}`, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := tmpl.Execute(ctx, cancelingStore{Store: storeOf(testKeys()), cancel: cancel})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %q, %v; want context.Canceled", out, err)
	}
}

// TestConcurrentExecute renders one template from several goroutines, each
// with its own store, and checks that no output mixes stores.
func TestConcurrentExecute(t *testing.T) {
	tmpl, err := Parse("c.tmpl", `{{range gets "/app/servers/*"}}server {{base .Key}} {{.Value}}
{{end}}{{range ls "/app/servers"}}{{getv (printf "/app/servers/%s" .)}}
{{end}}`, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 25
	stores := make([]Store, workers)
	wants := make([]string, workers)
	for w := range workers {
		m := map[string]string{}
		var a, b strings.Builder
		for i := range w + 2 {
			k := fmt.Sprintf("s%02d", i)
			v := fmt.Sprintf("10.%d.0.%d:80", w, i)
			m["/app/servers/"+k] = v
			fmt.Fprintf(&a, "server %s %s\n", k, v)
			fmt.Fprintf(&b, "%s\n", v)
		}
		stores[w] = storeOf(m)
		wants[w] = a.String() + b.String()
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				out, err := tmpl.Execute(context.Background(), stores[w])
				if err != nil {
					errs <- err
					return
				}
				if string(out) != wants[w] {
					errs <- fmt.Errorf("worker %d: got %q, want %q", w, out, wants[w])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOutputsAreIndependent(t *testing.T) {
	tmpl, err := Parse("i.tmpl", `{{getv "/k"}}`, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	first, err := tmpl.Execute(context.Background(), storeOf(map[string]string{"/k": "first"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmpl.Execute(context.Background(), storeOf(map[string]string{"/k": "SECOND"})); err != nil {
		t.Fatal(err)
	}
	if string(first) != "first" {
		t.Errorf("first output changed to %q", first)
	}
}

// TestTemplateUsableAfterPanic checks that a panic in one execution leaves
// the template fit for the next.
func TestTemplateUsableAfterPanic(t *testing.T) {
	tmpl, err := Parse("p.tmpl", `{{get "/app/servers/cocky_morse"}}`, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmpl.Execute(context.Background(), panicStore{storeOf(nil)}); err == nil {
		t.Fatal("got no error from a panicking store")
	}
	out, err := tmpl.Execute(context.Background(), storeOf(seedKeys()))
	if err != nil {
		t.Fatal(err)
	}
	if want := "{/app/servers/cocky_morse 192.168.1.22:49158}"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
