package resource

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

const parseDir = "testdata/parse"

// parseFile parses testdata/parse/conf.d/<name>.
func parseFile(t *testing.T, name, globalPrefix string) (Resource, []string, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(parseDir, "conf.d", name))
	if err != nil {
		t.Fatal(err)
	}
	return Parse(name, data, parseDir, globalPrefix)
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		file         string
		globalPrefix string
		want         Resource
		wantWarnings []string
	}{
		{
			file: "good.toml",
			want: Resource{
				Name:      "good.toml",
				File:      "testdata/parse/conf.d/good.toml",
				Src:       "testdata/parse/templates/app.tmpl",
				SrcName:   "app.tmpl",
				Dest:      "/etc/app/app.conf",
				Keys:      []string{"/app/servers", "/app/config"},
				Prefix:    "/production",
				Owner:     "haproxy",
				Group:     "haproxy",
				UID:       -1,
				GID:       -1,
				Mode:      0o640,
				ModeSet:   true,
				CheckCmd:  "/usr/sbin/app -c {{.src}}",
				ReloadCmd: "systemctl reload app",
				Wait:      "2s:10s",
				WaitMin:   2 * time.Second,
				WaitMax:   10 * time.Second,
			},
		},
		{
			file:         "good.toml",
			globalPrefix: "/staging/",
			want: Resource{
				Name:      "good.toml",
				File:      "testdata/parse/conf.d/good.toml",
				Src:       "testdata/parse/templates/app.tmpl",
				SrcName:   "app.tmpl",
				Dest:      "/etc/app/app.conf",
				Keys:      []string{"/app/servers", "/app/config"},
				Prefix:    "/staging",
				Owner:     "haproxy",
				Group:     "haproxy",
				UID:       -1,
				GID:       -1,
				Mode:      0o640,
				ModeSet:   true,
				CheckCmd:  "/usr/sbin/app -c {{.src}}",
				ReloadCmd: "systemctl reload app",
				Wait:      "2s:10s",
				WaitMin:   2 * time.Second,
				WaitMax:   10 * time.Second,
			},
		},
		{
			// A global prefix of "/" still replaces the resource prefix.
			file:         "good.toml",
			globalPrefix: "/",
			want: Resource{
				Name:      "good.toml",
				File:      "testdata/parse/conf.d/good.toml",
				Src:       "testdata/parse/templates/app.tmpl",
				SrcName:   "app.tmpl",
				Dest:      "/etc/app/app.conf",
				Keys:      []string{"/app/servers", "/app/config"},
				Prefix:    "",
				Owner:     "haproxy",
				Group:     "haproxy",
				UID:       -1,
				GID:       -1,
				Mode:      0o640,
				ModeSet:   true,
				CheckCmd:  "/usr/sbin/app -c {{.src}}",
				ReloadCmd: "systemctl reload app",
				Wait:      "2s:10s",
				WaitMin:   2 * time.Second,
				WaitMax:   10 * time.Second,
			},
		},
		{
			file: "minimal.toml",
			want: Resource{
				Name:    "minimal.toml",
				File:    "testdata/parse/conf.d/minimal.toml",
				Src:     "testdata/parse/templates/app.tmpl",
				SrcName: "app.tmpl",
				Dest:    "/etc/app.conf",
				Keys:    []string{"/"},
				UID:     -1,
				GID:     -1,
			},
		},
		{
			file:         "minimal.toml",
			globalPrefix: "prod",
			want: Resource{
				Name:    "minimal.toml",
				File:    "testdata/parse/conf.d/minimal.toml",
				Src:     "testdata/parse/templates/app.tmpl",
				SrcName: "app.tmpl",
				Dest:    "/etc/app.conf",
				Keys:    []string{"/"},
				Prefix:  "/prod",
				UID:     -1,
				GID:     -1,
			},
		},
		{
			// Table and field names match without regard to case, as in
			// the original.
			file: "ids.toml",
			want: Resource{
				Name:    "ids.toml",
				File:    "testdata/parse/conf.d/ids.toml",
				Src:     "testdata/parse/templates/app.tmpl",
				SrcName: "app.tmpl",
				Dest:    "/etc/app.conf",
				Keys:    []string{"/a"},
				Owner:   "root",
				UID:     0,
				GID:     33,
				Mode:    0o755 | os.ModeSetuid,
				ModeSet: true,
				Wait:    "500ms",
				WaitMin: 500 * time.Millisecond,
				WaitMax: 2 * time.Second,
			},
			wantWarnings: []string{
				`testdata/parse/conf.d/ids.toml:7: template.owner: ignored because uid is set`,
				`testdata/parse/conf.d/ids.toml:8: template.mode: "4755" is read as octal 04755; the original confd read it as decimal 4755`,
			},
		},
		{
			file: "decimalmode.toml",
			want: Resource{
				Name:    "decimalmode.toml",
				File:    "testdata/parse/conf.d/decimalmode.toml",
				Src:     "testdata/parse/templates/app.tmpl",
				SrcName: "app.tmpl",
				Dest:    "/etc/app.conf",
				Keys:    []string{"/a"},
				UID:     -1,
				GID:     -1,
				Mode:    0o644,
				ModeSet: true,
			},
			wantWarnings: []string{
				`testdata/parse/conf.d/decimalmode.toml:5: template.mode: "644" is read as octal 0644; the original confd read it as decimal 644`,
			},
		},
		{
			file: "nokeys.toml",
			want: Resource{
				Name:    "nokeys.toml",
				File:    "testdata/parse/conf.d/nokeys.toml",
				Src:     "testdata/parse/templates/app.tmpl",
				SrcName: "app.tmpl",
				Dest:    "/etc/app.conf",
				UID:     -1,
				GID:     -1,
			},
			wantWarnings: []string{
				`testdata/parse/conf.d/nokeys.toml:1: template.keys: not set; the template sees no keys`,
			},
		},
		{
			file: "emptykeys.toml",
			want: Resource{
				Name:    "emptykeys.toml",
				File:    "testdata/parse/conf.d/emptykeys.toml",
				Src:     "testdata/parse/templates/app.tmpl",
				SrcName: "app.tmpl",
				Dest:    "/etc/app.conf",
				UID:     -1,
				GID:     -1,
			},
			wantWarnings: []string{
				`testdata/parse/conf.d/emptykeys.toml:4: template.keys: empty; the template sees no keys`,
			},
		},
		{
			file: "unknown.toml",
			want: Resource{
				Name:    "unknown.toml",
				File:    "testdata/parse/conf.d/unknown.toml",
				Src:     "testdata/parse/templates/app.tmpl",
				SrcName: "app.tmpl",
				Dest:    "/etc/app.conf",
				Keys:    []string{"/a"},
				UID:     -1,
				GID:     -1,
			},
			wantWarnings: []string{
				`testdata/parse/conf.d/unknown.toml:1: debug: unknown key, ignored`,
				`testdata/parse/conf.d/unknown.toml:7: template.output_format: unknown key, ignored`,
				`testdata/parse/conf.d/unknown.toml:8: template.description: unknown key, ignored`,
				`testdata/parse/conf.d/unknown.toml:12: template.extra: unknown key, ignored`,
				`testdata/parse/conf.d/unknown.toml:15: backend: unknown key, ignored`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.globalPrefix, func(t *testing.T) {
			got, warnings, err := parseFile(t, tt.file, tt.globalPrefix)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(warnings, tt.wantWarnings) {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, tt.wantWarnings)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		file      string
		want      string
		wantLine  int
		wantField string
	}{
		{
			file:     "syntax.toml",
			want:     `testdata/parse/conf.d/syntax.toml:5: toml syntax: expected a comma (',') or array terminator (']'), but got 'm'`,
			wantLine: 5,
		},
		{
			file: "notable.toml",
			want: `testdata/parse/conf.d/notable.toml: missing [template] table`,
		},
		{
			file:      "tablearray.toml",
			want:      `testdata/parse/conf.d/tablearray.toml:1: template: must be a table, got array`,
			wantLine:  1,
			wantField: "template",
		},
		{
			file:      "nosrc.toml",
			want:      `testdata/parse/conf.d/nosrc.toml:3: template.src: is required: the template file, relative to the templates directory`,
			wantLine:  3,
			wantField: "template.src",
		},
		{
			file:      "emptysrc.toml",
			want:      `testdata/parse/conf.d/emptysrc.toml:3: template.src: is required: the template file, relative to the templates directory`,
			wantLine:  3,
			wantField: "template.src",
		},
		{
			file:      "nodest.toml",
			want:      `testdata/parse/conf.d/nodest.toml:1: template.dest: is required: the absolute path of the file to write`,
			wantLine:  1,
			wantField: "template.dest",
		},
		{
			file:      "missingtmpl.toml",
			want:      `testdata/parse/conf.d/missingtmpl.toml:3: template.src: template not found: testdata/parse/templates/nope.tmpl`,
			wantLine:  3,
			wantField: "template.src",
		},
		{
			file:      "dirtmpl.toml",
			want:      `testdata/parse/conf.d/dirtmpl.toml:2: template.src: template testdata/parse/templates/dir.tmpl is a directory`,
			wantLine:  2,
			wantField: "template.src",
		},
		{
			file:      "reldest.toml",
			want:      `testdata/parse/conf.d/reldest.toml:4: template.dest: must be an absolute path, got "etc/app.conf"`,
			wantLine:  4,
			wantField: "template.dest",
		},
		{
			file:      "dirdest.toml",
			want:      `testdata/parse/conf.d/dirdest.toml:3: template.dest: must name a file, not a directory, got "/etc/app/"`,
			wantLine:  3,
			wantField: "template.dest",
		},
		{
			file:      "dotdest.toml",
			want:      `testdata/parse/conf.d/dotdest.toml:3: template.dest: must name a file, not a directory, got "/etc/app/.."`,
			wantLine:  3,
			wantField: "template.dest",
		},
		{
			file:      "badmode.toml",
			want:      `testdata/parse/conf.d/badmode.toml:4: template.mode: invalid octal mode "9z"`,
			wantLine:  4,
			wantField: "template.mode",
		},
		{
			file:      "intmode.toml",
			want:      `testdata/parse/conf.d/intmode.toml:5: template.mode: must be a quoted octal string such as "0644", got integer 644`,
			wantLine:  5,
			wantField: "template.mode",
		},
		{
			file: "badtypes.toml",
			want: "testdata/parse/conf.d/badtypes.toml:4: template.keys: must be an array of strings, got string\n" +
				"testdata/parse/conf.d/badtypes.toml:5: template.uid: must be an integer, got string\n" +
				"testdata/parse/conf.d/badtypes.toml:6: template.reload_cmd: must be a string, got array",
			wantLine:  4,
			wantField: "template.keys",
		},
		{
			file:      "badkeys.toml",
			want:      `testdata/parse/conf.d/badkeys.toml:4: template.keys: element 2 must be a string, got integer`,
			wantLine:  4,
			wantField: "template.keys",
		},
		{
			file: "badids.toml",
			want: "testdata/parse/conf.d/badids.toml:5: template.uid: must be between 0 and 4294967294, got -2\n" +
				"testdata/parse/conf.d/badids.toml:6: template.gid: must be between 0 and 4294967294, got 4294967295",
			wantLine:  5,
			wantField: "template.uid",
		},
		{
			file:      "badwait.toml",
			want:      `testdata/parse/conf.d/badwait.toml:5: template.wait: invalid wait "soon": want "min" or "min:max" durations such as "2s:10s"`,
			wantLine:  5,
			wantField: "template.wait",
		},
		{
			file:      "waitorder.toml",
			want:      `testdata/parse/conf.d/waitorder.toml:5: template.wait: min 10s is greater than max 2s`,
			wantLine:  5,
			wantField: "template.wait",
		},
		{
			file: "many.toml",
			want: "testdata/parse/conf.d/many.toml:1: template.src: is required: the template file, relative to the templates directory\n" +
				"testdata/parse/conf.d/many.toml:3: template.dest: must be an absolute path, got \"relative.conf\"\n" +
				"testdata/parse/conf.d/many.toml:4: template.mode: invalid octal mode \"abc\"",
			wantLine:  1,
			wantField: "template.src",
		},
		{
			file:      "twice.toml",
			want:      `testdata/parse/conf.d/twice.toml:3: template.dest: set twice, as "Dest" and "dest"`,
			wantLine:  3,
			wantField: "template.dest",
		},
		{
			// Keys of an inline table point at the line of the table.
			file:      "inline.toml",
			want:      `testdata/parse/conf.d/inline.toml:1: template.dest: must be an absolute path, got "etc/app.conf"`,
			wantLine:  1,
			wantField: "template.dest",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, _, err := parseFile(t, tt.file, "")
			if err == nil {
				t.Fatalf("Parse = %+v, want error %q", got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if e.Line != tt.wantLine || e.Field != tt.wantField {
				t.Errorf("first *Error at line %d field %q, want line %d field %q", e.Line, e.Field, tt.wantLine, tt.wantField)
			}
			if !reflect.DeepEqual(got, Resource{}) {
				t.Errorf("Parse returned %+v with its error, want the zero Resource", got)
			}
		})
	}
}

func TestParseErrorsMatch(t *testing.T) {
	_, _, err := parseFile(t, "missingtmpl.toml", "")
	if !errors.Is(err, ErrTemplateNotFound) {
		t.Errorf("errors.Is(%v, ErrTemplateNotFound) = false, want true", err)
	}
	_, _, err = parseFile(t, "syntax.toml", "")
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Errorf("errors.As(%v, *toml.ParseError) = false, want true", err)
	}
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("errors.As(%v, *SyntaxError) = false, want true", err)
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    os.FileMode
		wantErr bool
	}{
		{in: "644", want: 0o644},
		{in: "0644", want: 0o644},
		{in: "0755", want: 0o755},
		{in: "0o600", want: 0o600},
		{in: "0O600", want: 0o600},
		{in: "0", want: 0},
		{in: "7", want: 0o7},
		{in: "1777", want: 0o777 | os.ModeSticky},
		{in: "2750", want: 0o750 | os.ModeSetgid},
		{in: "04711", want: 0o711 | os.ModeSetuid},
		{in: "07777", want: 0o777 | os.ModeSetuid | os.ModeSetgid | os.ModeSticky},
		{in: "9", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "", wantErr: true},
		{in: "0x1a4", wantErr: true},
		{in: "-644", wantErr: true},
		{in: "+644", wantErr: true},
		{in: "6_44", wantErr: true},
		{in: " 644", wantErr: true},
		{in: "10000", wantErr: true},
		{in: "0o", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseMode(tt.in)
			if tt.wantErr {
				want := `invalid octal mode "` + tt.in + `"`
				if err == nil || err.Error() != want {
					t.Errorf("parseMode(%q) = %v, %v; want error %q", tt.in, got, err, want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseMode(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestParseModeField checks mode through Parse, including that "" means
// "not set".
func TestParseModeField(t *testing.T) {
	tests := []struct {
		mode        string
		want        os.FileMode
		wantSet     bool
		wantErr     string
		wantWarning bool
	}{
		{mode: `"644"`, want: 0o644, wantSet: true, wantWarning: true},
		{mode: `"0644"`, want: 0o644, wantSet: true},
		{mode: `"0755"`, want: 0o755, wantSet: true},
		{mode: `"7"`, want: 0o7, wantSet: true},
		{mode: `""`},
		{mode: `"9"`, wantErr: `x.toml:5: template.mode: invalid octal mode "9"`},
		{mode: `"abc"`, wantErr: `x.toml:5: template.mode: invalid octal mode "abc"`},
		{mode: `0o644`, wantErr: `x.toml:5: template.mode: must be a quoted octal string such as "0420", got integer 420`},
		{mode: `true`, wantErr: `x.toml:5: template.mode: must be a quoted octal string such as "0644", got boolean`},
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "templates", "t.tmpl"), "")
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			src := "[template]\nsrc = \"t.tmpl\"\ndest = \"/etc/x\"\nkeys = [\"/a\"]\nmode = " + tt.mode + "\n"
			r, warnings, err := Parse("x.toml", []byte(src), dir, "")
			if tt.wantErr != "" {
				want := filepath.Join(dir, "conf.d") + "/" + tt.wantErr
				if err == nil || err.Error() != want {
					t.Errorf("error = %v, want %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Mode != tt.want || r.ModeSet != tt.wantSet {
				t.Errorf("Mode, ModeSet = %v, %v; want %v, %v", r.Mode, r.ModeSet, tt.want, tt.wantSet)
			}
			if got := len(warnings) > 0; got != tt.wantWarning {
				t.Errorf("warnings = %q, want some: %v", warnings, tt.wantWarning)
			}
		})
	}
}

func TestNormalizeKeys(t *testing.T) {
	tests := []struct {
		keys string
		want []string
	}{
		{keys: `["/app"]`, want: []string{"/app"}},
		{keys: `["app"]`, want: []string{"/app"}},
		{keys: `["/app/"]`, want: []string{"/app"}},
		{keys: `["//app//servers/"]`, want: []string{"/app/servers"}},
		{keys: `["/app/./servers/../config"]`, want: []string{"/app/config"}},
		{keys: `["/"]`, want: []string{"/"}},
		{keys: `[""]`, want: []string{"/"}},
		{keys: `["/../.."]`, want: []string{"/"}},
		{keys: `["/b", "/a", "b/"]`, want: []string{"/b", "/a"}},
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "templates", "t.tmpl"), "")
	for _, tt := range tests {
		t.Run(tt.keys, func(t *testing.T) {
			src := "[template]\nsrc = \"t.tmpl\"\ndest = \"/etc/x\"\nkeys = " + tt.keys + "\n"
			r, _, err := Parse("x.toml", []byte(src), dir, "")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(r.Keys, tt.want) {
				t.Errorf("Keys = %q, want %q", r.Keys, tt.want)
			}
		})
	}
}

func TestNormalizePrefix(t *testing.T) {
	tests := []struct {
		prefix, global string
		want           string
	}{
		{prefix: "", want: ""},
		{prefix: "/", want: ""},
		{prefix: "app", want: "/app"},
		{prefix: "/app/", want: "/app"},
		{prefix: "//a//b/", want: "/a/b"},
		{prefix: "/app", global: "/prod", want: "/prod"},
		{prefix: "", global: "prod/", want: "/prod"},
		{prefix: "/app", global: "/", want: ""},
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "templates", "t.tmpl"), "")
	for _, tt := range tests {
		t.Run(tt.prefix+"|"+tt.global, func(t *testing.T) {
			src := "[template]\nsrc = \"t.tmpl\"\ndest = \"/etc/x\"\nkeys = [\"/a\"]\nprefix = \"" + tt.prefix + "\"\n"
			r, _, err := Parse("x.toml", []byte(src), dir, tt.global)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Prefix != tt.want {
				t.Errorf("Prefix = %q, want %q", r.Prefix, tt.want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		err  *Error
		want string
	}{
		{err: &Error{File: "conf.d/a.toml", Line: 3, Field: "template.mode", Err: base}, want: "conf.d/a.toml:3: template.mode: boom"},
		{err: &Error{File: "conf.d/a.toml", Field: "template.mode", Err: base}, want: "conf.d/a.toml: template.mode: boom"},
		{err: &Error{File: "conf.d/a.toml", Line: 7, Err: base}, want: "conf.d/a.toml:7: boom"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(tt.err, base) {
			t.Errorf("errors.Is(%v, base) = false", tt.err)
		}
	}
}

func TestKeyLines(t *testing.T) {
	src := `top = 1
"quoted.key" = 2
a.b = 3

[template]
src = "x" # comment
  Dest   =   "y"
'check_cmd' = """
[not]
keys = 1
"""
keys = [
  "x = 1",
]

[ template . "sub" ]
x = 1

[[arr]]
y = 2
`
	want := map[string]int{
		"top":                1,
		"quoted.key":         2,
		"a":                  3,
		"a.b":                3,
		"template":           5,
		"template.src":       6,
		"template.dest":      7,
		"template.check_cmd": 8,
		"template.keys":      12,
		"template.sub":       16,
		"template.sub.x":     17,
		"arr":                19,
		"arr.y":              20,
	}
	got := keyLines([]byte(src))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines:\n got %v\nwant %v", got, want)
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
