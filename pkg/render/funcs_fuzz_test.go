package render_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/render"
)

// fuzzCase is a template over the keys /in and /sep and the output it must
// give for in and sep; want returns "" and a check of the error when the
// template must fail.
type fuzzCase struct {
	name string
	text string
	want func(in, sep string) (out string, checkErr func(error) bool)
}

// ok is a want that expects out and no error.
func ok(out string) (string, func(error) bool) { return out, nil }

// fails is a want that expects an error for which is returns true.
func fails(is func(error) bool) (string, func(error) bool) { return "", is }

func errorAs[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

func isJSONError(err error) bool {
	return errorAs[*json.SyntaxError](err) || errorAs[*json.UnmarshalTypeError](err)
}

func anyError(err error) bool { return err != nil }

// fuzzCases state what each function that parses its input must give,
// computed here from the standard library.
var fuzzCases = []fuzzCase{
	{"json", `{{json (getv "/in")}}`, func(in, _ string) (string, func(error) bool) {
		var m map[string]any
		if err := json.Unmarshal([]byte(in), &m); err != nil {
			return fails(isJSONError)
		}
		return ok(fmt.Sprint(m))
	}},
	{"jsonArray", `{{jsonArray (getv "/in")}}`, func(in, _ string) (string, func(error) bool) {
		var a []any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			return fails(isJSONError)
		}
		return ok(fmt.Sprint(a))
	}},
	{"split", `{{len (split (getv "/in") (getv "/sep"))}}`, func(in, sep string) (string, func(error) bool) {
		return ok(strconv.Itoa(len(strings.Split(in, sep))))
	}},
	{"split join", `{{join (split (getv "/in") (getv "/sep")) (getv "/sep")}}`, func(in, _ string) (string, func(error) bool) {
		return ok(in)
	}},
	{"atoi", `{{atoi (getv "/in")}}`, func(in, _ string) (string, func(error) bool) {
		n, err := strconv.Atoi(in)
		if err != nil {
			return fails(errorAs[*strconv.NumError])
		}
		return ok(strconv.Itoa(n))
	}},
	{"parseBool", `{{parseBool (getv "/in")}}`, func(in, _ string) (string, func(error) bool) {
		b, err := strconv.ParseBool(in)
		if err != nil {
			return fails(errorAs[*strconv.NumError])
		}
		return ok(strconv.FormatBool(b))
	}},
	{"base64Decode", `{{base64Decode (getv "/in")}}`, func(in, _ string) (string, func(error) bool) {
		b, err := base64.StdEncoding.DecodeString(in)
		if err != nil {
			return fails(errorAs[base64.CorruptInputError])
		}
		return ok(string(b))
	}},
	{"base64 round trip", `{{base64Decode (base64Encode (getv "/in"))}}`, func(in, _ string) (string, func(error) bool) {
		return ok(in)
	}},
	{"map", `{{$m := map (getv "/sep") (getv "/in")}}{{index $m (getv "/sep")}}`, func(in, _ string) (string, func(error) bool) {
		return ok(in)
	}},
	{"map later key wins", `{{map (getv "/in") 1 (getv "/sep") 2}}`, func(in, sep string) (string, func(error) bool) {
		return ok(fmt.Sprint(map[string]any{in: 1, sep: 2}))
	}},
	{"map odd arguments", `{{map (getv "/in")}}`, func(string, string) (string, func(error) bool) {
		return fails(anyError)
	}},
	{"map key not a string", `{{map (atoi "1") (getv "/in")}}`, func(string, string) (string, func(error) bool) {
		return fails(anyError)
	}},
}

// FuzzFuncs executes templates that call the functions parsing their
// input (json, jsonArray, split, atoi, parseBool, base64Decode, map) on the
// values of the keys /in and /sep, and the store functions on /in as a
// key, pattern and directory. No function may panic (Execute turns a panic
// into an error naming it), and each result or error must be what the
// standard library gives for the same input.
func FuzzFuncs(f *testing.F) {
	f.Add(`{"a":1,"b":[true,null,"x"]}`, ",")
	f.Add(`[1, "2", {"3": 4.5e300}]`, "")
	f.Add("-9223372036854775808", "0")
	f.Add("aGVsbG8gd29ybGQ=", "=")
	f.Add("/in", "/")
	opts := render.Options{
		Getenv: func(string) (string, bool) { return "", false },
		Now:    func() time.Time { return time.Date(2024, time.May, 1, 0, 0, 0, 0, time.UTC) },
		Stat:   func(string) (fs.FileInfo, error) { return nil, fs.ErrNotExist },
	}
	tmpls := make([]*render.Template, len(fuzzCases))
	for i, c := range fuzzCases {
		tmpl, err := render.Parse(c.name, c.text, opts)
		if err != nil {
			f.Fatalf("parse %s: %v", c.name, err)
		}
		tmpls[i] = tmpl
	}
	stores, err := render.Parse("store", `{{exists (getv "/in")}} {{ls (getv "/in")}} {{lsdir (getv "/in")}} {{getvs (getv "/in")}}`, opts)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in, sep string) {
		ctx := context.Background()
		view := kv.FromMap(1, map[string]string{"/in": in, "/sep": sep}).All()
		for i, c := range fuzzCases {
			got, err := tmpls[i].Execute(ctx, view)
			if panicked(c.name, err) {
				t.Fatalf("%s(%q, %q) panicked: %v", c.name, in, sep, err)
			}
			want, checkErr := c.want(in, sep)
			switch {
			case checkErr != nil && (err == nil || !checkErr(err)):
				t.Errorf("%s(%q, %q) = %q, %v; want an error of the function", c.name, in, sep, got, err)
			case checkErr == nil && (err != nil || string(got) != want):
				t.Errorf("%s(%q, %q) = %q, %v; want %q", c.name, in, sep, got, err, want)
			}
		}

		got, err := stores.Execute(ctx, view)
		values, verr := view.GetAllValues(in)
		switch {
		case panicked("store", err):
			t.Fatalf("store functions on %q panicked: %v", in, err)
		case verr != nil:
			if !errors.Is(err, verr) && !errors.As(err, new(*kv.PatternError)) {
				t.Errorf("store functions on %q: error %v, want %v", in, err, verr)
			}
		default:
			want := fmt.Sprint(view.Exists(in), " ", view.List(in), " ", view.ListDir(in), " ", values)
			if err != nil || string(got) != want {
				t.Errorf("store functions on %q = %q, %v; want %q", in, got, err, want)
			}
		}
	})
}

// panicked reports whether err is how Execute reports a panic in template
// name.
func panicked(name string, err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "execute template "+name+": panic:")
}
