package resource

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse parses arbitrary resource files against testdata/parse, whose
// templates directory holds app.tmpl (a file) and dir.tmpl (a directory).
// Whatever the input, Parse must not panic, must give the same answer twice,
// and either return a resource that keeps every promise of the Resource
// type or only *Errors naming the file.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"good.toml", "minimal.toml", "inline.toml", "ids.toml", "badmode.toml"} {
		data, err := os.ReadFile(filepath.Join(parseDir, "conf.d", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
	}
	f.Fuzz(func(t *testing.T, data []byte, globalPrefix string) {
		const name = "sub/fuzz.toml"
		file := filepath.Join(parseDir, "conf.d", "sub", "fuzz.toml")
		r, warnings, err := Parse(name, data, parseDir, globalPrefix)

		r2, warnings2, err2 := Parse(name, data, parseDir, globalPrefix)
		if !reflect.DeepEqual(r, r2) || !reflect.DeepEqual(warnings, warnings2) || errString(err) != errString(err2) {
			t.Fatalf("Parse is not deterministic:\nfirst:  %+v %q %v\nsecond: %+v %q %v",
				r, warnings, err, r2, warnings2, err2)
		}
		lines := strings.Count(string(data), "\n") + 1

		for _, w := range warnings {
			if !strings.HasPrefix(w, file+":") {
				t.Errorf("warning %q does not start with the file %s", w, file)
			}
		}
		if err != nil {
			if !reflect.DeepEqual(r, Resource{}) {
				t.Errorf("Parse returned a resource with an error: %+v", r)
			}
			leaves := resourceErrors(err)
			if len(leaves) == 0 {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			for _, e := range leaves {
				var re *Error
				if !errors.As(e, &re) || re != e {
					t.Errorf("error %v (%T) is not an *Error", e, e)
					continue
				}
				if re.File != file {
					t.Errorf("error %v names file %q, want %q", re, re.File, file)
				}
				if re.Line < 0 || re.Line > lines {
					t.Errorf("error %v is on line %d of a file of %d lines", re, re.Line, lines)
				}
				if re.Err == nil {
					t.Errorf("error %#v has no cause", re)
				}
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error %q does not name the file %s", err, file)
			}
			return
		}
		checkResource(t, r, name, file, globalPrefix)
	})
}

// checkResource checks the promises of the Resource type.
func checkResource(t *testing.T, r Resource, name, file, globalPrefix string) {
	t.Helper()
	if r.Name != name || r.File != file {
		t.Errorf("Name, File = %q, %q, want %q, %q", r.Name, r.File, name, file)
	}
	if r.SrcName == "" || r.Src != filepath.Join(parseDir, "templates", r.SrcName) {
		t.Errorf("Src = %q for SrcName %q", r.Src, r.SrcName)
	}
	if fi, err := os.Stat(r.Src); err != nil || fi.IsDir() {
		t.Errorf("Src %q is not a file: %v", r.Src, err)
	}
	if !filepath.IsAbs(r.Dest) || filepath.Clean(r.Dest) != r.Dest || r.Dest == "/" {
		t.Errorf("Dest = %q, want a clean absolute file path", r.Dest)
	}
	seen := map[string]bool{}
	for _, k := range r.Keys {
		if !isNormalKey(k) {
			t.Errorf("key %q is not normalised", k)
		}
		if seen[k] {
			t.Errorf("key %q is listed twice in %q", k, r.Keys)
		}
		seen[k] = true
	}
	if r.Prefix != "" && (!isNormalKey(r.Prefix) || r.Prefix == "/") {
		t.Errorf("Prefix = %q, want \"\" or a normalised key other than \"/\"", r.Prefix)
	}
	if globalPrefix != "" {
		want := path.Clean("/" + globalPrefix)
		if want == "/" {
			want = ""
		}
		if r.Prefix != want {
			t.Errorf("Prefix = %q with global prefix %q, want %q", r.Prefix, globalPrefix, want)
		}
	}
	const maxMode = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky
	if r.Mode&^maxMode != 0 || (!r.ModeSet && r.Mode != 0) {
		t.Errorf("Mode = %v (%#o), ModeSet = %v: want at most 07777 and 0 when not set", r.Mode, uint32(r.Mode), r.ModeSet)
	}
	for _, id := range []int{r.UID, r.GID} {
		if id < -1 || id > maxID {
			t.Errorf("UID, GID = %d, %d, want -1 or 0..%d", r.UID, r.GID, maxID)
		}
	}
	if r.WaitMin < 0 || r.WaitMax < r.WaitMin || (r.Wait == "" && r.WaitMax != 0) {
		t.Errorf("Wait %q parsed as %s:%s", r.Wait, r.WaitMin, r.WaitMax)
	}
}

// isNormalKey reports whether k has one leading slash, no trailing slash
// (unless it is "/") and no empty or dot segments.
func isNormalKey(k string) bool {
	if k == "/" {
		return true
	}
	if !strings.HasPrefix(k, "/") || strings.HasSuffix(k, "/") {
		return false
	}
	for _, seg := range strings.Split(k[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// resourceErrors returns the errors that err joins, or err alone.
func resourceErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
