package resource

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLoadDirTree(t *testing.T) {
	res, warnings, errs := LoadDir("testdata/tree", "/global")

	var names []string
	for _, r := range res {
		names = append(names, r.Name)
		if r.Prefix != "/global" {
			t.Errorf("%s: Prefix = %q, want the global prefix %q", r.Name, r.Prefix, "/global")
		}
	}
	wantNames := []string{"a.toml", "dir.toml/x.toml", "sub/b.toml", "sub/deeper/c.toml"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("resources = %q, want %q", names, wantNames)
	}
	if len(res) > 0 {
		if got, want := res[len(res)-1].File, filepath.Join("testdata/tree/conf.d/sub/deeper/c.toml"); got != want {
			t.Errorf("File = %q, want %q", got, want)
		}
	}

	wantWarnings := []string{
		"testdata/tree/conf.d/sub/deeper/c.toml: template.dest: /etc/a.conf is also written by testdata/tree/conf.d/a.toml",
	}
	if !reflect.DeepEqual(warnings, wantWarnings) {
		t.Errorf("warnings:\n got %q\nwant %q", warnings, wantWarnings)
	}

	wantErrs := []string{
		`testdata/tree/conf.d/sub/broken.toml:3: template.dest: must be an absolute path, got "b.conf"`,
	}
	if got := errStrings(errs); !reflect.DeepEqual(got, wantErrs) {
		t.Errorf("errors:\n got %q\nwant %q", got, wantErrs)
	}
}

func TestLoadDirProblems(t *testing.T) {
	tests := []struct {
		name         string
		setup        func(t *testing.T, confDir string)
		wantRes      int
		wantWarnings []string // with "$D" for confDir
		wantErrs     []string
		wantIs       error
	}{
		{
			name:     "missing conf.d",
			setup:    func(t *testing.T, confDir string) {},
			wantErrs: []string{"load template resources: stat $D/conf.d: no such file or directory"},
			wantIs:   fs.ErrNotExist,
		},
		{
			name: "conf.d is a file",
			setup: func(t *testing.T, confDir string) {
				writeFile(t, filepath.Join(confDir, "conf.d"), "")
			},
			wantErrs: []string{"load template resources: $D/conf.d is not a directory"},
		},
		{
			name: "empty conf.d",
			setup: func(t *testing.T, confDir string) {
				mkdir(t, filepath.Join(confDir, "conf.d"))
			},
			wantWarnings: []string{"$D/conf.d: no template resources (*.toml)"},
		},
		{
			name: "only other files",
			setup: func(t *testing.T, confDir string) {
				writeFile(t, filepath.Join(confDir, "conf.d", "notes.txt"), "")
				writeFile(t, filepath.Join(confDir, "conf.d", "x.toml~"), "")
			},
			wantWarnings: []string{"$D/conf.d: no template resources (*.toml)"},
		},
		{
			name: "unreadable file does not stop the others",
			setup: func(t *testing.T, confDir string) {
				writeFile(t, filepath.Join(confDir, "templates", "t.tmpl"), "")
				writeFile(t, filepath.Join(confDir, "conf.d", "b.toml"),
					"[template]\nsrc = \"t.tmpl\"\ndest = \"/etc/b\"\nkeys = [\"/b\"]\n")
				if err := os.Symlink("nowhere", filepath.Join(confDir, "conf.d", "a.toml")); err != nil {
					t.Fatal(err)
				}
			},
			wantRes:  1,
			wantErrs: []string{"$D/conf.d/a.toml: read: no such file or directory"},
			wantIs:   fs.ErrNotExist,
		},
		{
			name: "syntax error does not stop the others",
			setup: func(t *testing.T, confDir string) {
				writeFile(t, filepath.Join(confDir, "templates", "t.tmpl"), "")
				writeFile(t, filepath.Join(confDir, "conf.d", "a.toml"), "[template]\nsrc = t.tmpl\n")
				writeFile(t, filepath.Join(confDir, "conf.d", "b.toml"),
					"[template]\nsrc = \"t.tmpl\"\ndest = \"/etc/b\"\nkeys = [\"/b\"]\n")
			},
			wantRes:  1,
			wantErrs: []string{"$D/conf.d/a.toml:2: toml syntax: expected value but found \"t\" instead"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			res, warnings, errs := LoadDir(dir, "")
			if len(res) != tt.wantRes {
				t.Errorf("got %d resources, want %d", len(res), tt.wantRes)
			}
			if got, want := warnings, expand(tt.wantWarnings, dir); !reflect.DeepEqual(got, want) {
				t.Errorf("warnings:\n got %q\nwant %q", got, want)
			}
			if got, want := errStrings(errs), expand(tt.wantErrs, dir); !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n got %q\nwant %q", got, want)
			}
			if tt.wantIs != nil && (len(errs) == 0 || !errors.Is(errs[0], tt.wantIs)) {
				t.Errorf("errors.Is(%v, %v) = false, want true", errs, tt.wantIs)
			}
		})
	}
}

func errStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func expand(list []string, dir string) []string {
	var out []string
	for _, s := range list {
		out = append(out, os.Expand(s, func(k string) string {
			if k == "D" {
				return dir
			}
			return "$" + k
		}))
	}
	return out
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
