package localkv

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/etcdconfd/confd/pkg/kv"
)

// pairs returns the snapshot's keys and values as a map.
func pairs(t *testing.T, s *kv.Snapshot) map[string]string {
	t.Helper()
	if s.Revision() != 0 {
		t.Errorf("Revision() = %d, want 0", s.Revision())
	}
	m := map[string]string{}
	for _, p := range s.Pairs() {
		m[p.Key] = p.Value
	}
	return m
}

func TestFromEnv(t *testing.T) {
	environ := []string{
		"APP_SERVERS_A=10.0.0.1",
		"APP_SERVERS_B=10.0.0.2",
		"APP_PORT=80",
		"APPX_NAME=other",
		"APP=root",
		"app_lower=x",
		"APP_Mixed_Case=m",
		"APP_SERVERS_A=duplicate, ignored",
		"NOEQUALS",
		"=empty name",
		"APP__DOUBLE=d",
		"DB_PASS=a=b",
		"HOME=/root",
	}
	tests := []struct {
		name     string
		prefixes []string
		want     map[string]string
	}{
		{
			name:     "prefix on key boundary",
			prefixes: []string{"/app"},
			want: map[string]string{
				"/app":            "root",
				"/app/servers/a":  "10.0.0.1",
				"/app/servers/b":  "10.0.0.2",
				"/app/port":       "80",
				"/app/mixed/case": "m",
				"/app//double":    "d",
			},
		},
		{
			name:     "nested prefix with trailing slash",
			prefixes: []string{"/app/servers/"},
			want: map[string]string{
				"/app/servers/a": "10.0.0.1",
				"/app/servers/b": "10.0.0.2",
			},
		},
		{
			name:     "several prefixes, value with =",
			prefixes: []string{"app/servers", "/db"},
			want: map[string]string{
				"/app/servers/a": "10.0.0.1",
				"/app/servers/b": "10.0.0.2",
				"/db/pass":       "a=b",
			},
		},
		{
			name:     "upper-case prefix",
			prefixes: []string{"/APP/PORT"},
			want:     map[string]string{"/app/port": "80"},
		},
		{
			name:     "root sees every variable",
			prefixes: []string{"/"},
			want: map[string]string{
				"/app":            "root",
				"/app/servers/a":  "10.0.0.1",
				"/app/servers/b":  "10.0.0.2",
				"/app/port":       "80",
				"/appx/name":      "other",
				"/app/lower":      "x",
				"/app/mixed/case": "m",
				"/app//double":    "d",
				"/db/pass":        "a=b",
				"/home":           "/root",
			},
		},
		{
			name:     "no match",
			prefixes: []string{"/nothing"},
			want:     map[string]string{},
		},
		{
			name:     "no prefixes",
			prefixes: nil,
			want:     map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pairs(t, FromEnv(environ, tt.prefixes))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromEnv(%q):\n got %v\nwant %v", tt.prefixes, got, tt.want)
			}
		})
	}
}

func TestEnvNameAndKey(t *testing.T) {
	names := []struct{ key, name string }{
		{"/app/servers", "APP_SERVERS"},
		{"app/servers/", "APP_SERVERS"},
		{"/app-x/y", "APP-X_Y"},
		{"/", ""},
		{"", ""},
	}
	for _, tt := range names {
		if got := envName(tt.key); got != tt.name {
			t.Errorf("envName(%q) = %q, want %q", tt.key, got, tt.name)
		}
	}
	keys := []struct{ name, key string }{
		{"APP_SERVERS_A", "/app/servers/a"},
		{"APP", "/app"},
		{"APP_", "/app/"},
		{"Mixed_Case", "/mixed/case"},
	}
	for _, tt := range keys {
		if got := envKey(tt.name); got != tt.key {
			t.Errorf("envKey(%q) = %q, want %q", tt.name, got, tt.key)
		}
	}
}

func TestFromFiles(t *testing.T) {
	tests := []struct {
		name     string
		paths    []string
		filter   string
		prefixes []string
		want     map[string]string
	}{
		{
			name:     "later files override earlier ones",
			paths:    []string{"testdata/config.yaml", "testdata/secrets.yml", "testdata/override.json"},
			prefixes: []string{"/"},
			want: map[string]string{
				"/key":                  "foobar",
				"/database/host":        "127.0.0.1",
				"/database/port":        "3307",
				"/database/password":    "ENVp@sSw0rd",
				"/database/username":    "confd",
				"/database/ratio":       "1",
				"/upstream/app1":        "10.0.1.10:8080",
				"/upstream/app2":        "10.0.1.11:8080",
				"/upstream/0":           "10.0.2.1:80",
				"/upstream/1":           "10.0.2.2:80",
				"/prefix/database/host": "127.0.0.1",
				"/prefix/database/port": "3306",
				"/enabled":              "true",
				"/escaped":              "a\u00e9/b \U0001F600",
				"/big":                  "18446744073709551615",
				"/exp":                  "1000",
				"/list/0/name":          "x",
				"/list/1/0":             "1",
				"/list/1/1":             "2",
				"/list/3":               "false",
			},
		},
		{
			name:     "only keys under the prefixes",
			paths:    []string{"testdata/config.yaml", "testdata/secrets.yml"},
			prefixes: []string{"/database/", "key"},
			want: map[string]string{
				"/key":               "foobar",
				"/database/host":     "127.0.0.1",
				"/database/port":     "3306",
				"/database/password": "p@sSw0rd",
				"/database/username": "confd",
			},
		},
		{
			name:     "scalar formatting",
			paths:    []string{"testdata/types.yaml"},
			prefixes: []string{"/"},
			want: map[string]string{
				"/int":         "42",
				"/negative":    "-7",
				"/hex":         "31",
				"/octal":       "15",
				"/big":         "18446744073709551615",
				"/float":       "1.5",
				"/exp":         "1000",
				"/small":       "0.000001",
				"/inf":         "+Inf",
				"/bool_true":   "true",
				"/bool_false":  "false",
				"/yes_word":    "yes",
				"/on_word":     "on",
				"/quoted_int":  "42",
				"/single":      "it's",
				"/date":        "2001-12-14",
				"/timestamp":   "2001-12-14t21:59:43.10-05:00",
				"/tagged_str":  "123",
				"/binary":      "hello",
				"/block":       "line one\nline two\n",
				"/folded":      "one two\n",
				"/list/0":      "a",
				"/list/1":      "2",
				"/list/2/name": "x",
				"/list/2/port": "80",
				"/list/3/0":    "p",
				"/list/3/1":    "q",
				"/with/slash":  "nested",
				"/80":          "port key",
			},
		},
		{
			name:     "anchors and merge keys",
			paths:    []string{"testdata/merge.yaml"},
			prefixes: []string{"/service", "/copy"},
			want: map[string]string{
				"/service/timeout":  "5s",
				"/service/retries":  "5",
				"/service/region":   "eu",
				"/service/tls/ca":   "/etc/ca.pem",
				"/copy/timeout":     "5s",
				"/copy/retries":     "3",
				"/copy/tls/enabled": "true",
			},
		},
		{
			name:     "every document of a file",
			paths:    []string{"testdata/multi.yaml"},
			prefixes: []string{"/"},
			want:     map[string]string{"/a": "1", "/b": "2", "/c": "2"},
		},
		{
			name:     "empty file",
			paths:    []string{"testdata/empty.yaml"},
			prefixes: []string{"/"},
			want:     map[string]string{},
		},
		{
			name:     "directory: data files only, recursive, in order, prefix on key boundary",
			paths:    []string{"testdata/dir"},
			prefixes: []string{"/app"},
			want: map[string]string{
				"/app/name":   "from-c",
				"/app/port":   "80",
				"/app/region": "eu",
			},
		},
		{
			name:     "a named file is read whatever its extension",
			paths:    []string{"testdata/dir", "testdata/dir/notes.txt"},
			prefixes: []string{"/app/name"},
			want:     map[string]string{"/app/name": "never read"},
		},
		{
			name:     "directory with the filter * as given: data files only",
			paths:    []string{"testdata/dir"},
			filter:   "*",
			prefixes: []string{"/app"},
			want: map[string]string{
				"/app/name":   "from-c",
				"/app/port":   "80",
				"/app/region": "eu",
			},
		},
		{
			name:     "directory with a filter: the files whose name matches, whatever their extension",
			paths:    []string{"testdata/dir"},
			filter:   "*.txt",
			prefixes: []string{"/app"},
			want:     map[string]string{"/app/name": "never read"},
		},
		{
			name:     "a filter matches the name, not the path",
			paths:    []string{"testdata/dir"},
			filter:   "[cd].*",
			prefixes: []string{"/app"},
			want:     map[string]string{"/app/name": "from-c", "/app/region": "eu"},
		},
		{
			name:     "a link to a directory that the filter matches is not read as a file",
			paths:    []string{"testdata/linked"},
			filter:   "*",
			prefixes: []string{"/app"},
			want:     map[string]string{"/app/name": "from-a", "/app/port": "80"},
		},
		{
			name:     "a named file is read whatever the filter",
			paths:    []string{"testdata/dir/a.yaml"},
			filter:   "*.json",
			prefixes: []string{"/app"},
			want:     map[string]string{"/app/name": "from-a", "/app/port": "80"},
		},
		{
			name:     "no prefixes",
			paths:    []string{"testdata/config.yaml"},
			prefixes: nil,
			want:     map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromFiles(tt.paths, tt.filter, tt.prefixes)
			if err != nil {
				t.Fatalf("FromFiles: %v", err)
			}
			got := pairs(t, s)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromFiles(%q, %q, %q):\n got %v\nwant %v", tt.paths, tt.filter, tt.prefixes, got, tt.want)
			}
		})
	}
}

func TestFromFilesErrors(t *testing.T) {
	tests := []struct {
		name   string
		paths  []string
		filter string
		want   string
	}{
		{
			name:  "missing file",
			paths: []string{"testdata/config.yaml", "testdata/nope.yaml"},
			want:  "read data file: stat testdata/nope.yaml: no such file or directory",
		},
		{
			name:  "yaml syntax",
			paths: []string{"testdata/bad/syntax.yaml"},
			want:  "parse testdata/bad/syntax.yaml: yaml: line 2: did not find expected key",
		},
		{
			name:  "json syntax",
			paths: []string{"testdata/bad/syntax.json"},
			want:  "parse testdata/bad/syntax.json: line 2: invalid character ',' looking for beginning of object key string",
		},
		{
			name:  "json duplicate key",
			paths: []string{"testdata/bad/dup.json"},
			want:  `parse testdata/bad/dup.json: line 4: object key "b" already defined at line 3`,
		},
		{
			name:  "json top level array",
			paths: []string{"testdata/bad/toparray.json"},
			want:  "parse testdata/bad/toparray.json: line 1: the top level must be an object, got an array",
		},
		{
			name:  "json trailing data",
			paths: []string{"testdata/bad/trailing.json"},
			want:  "parse testdata/bad/trailing.json: line 2: data after the top-level value",
		},
		{
			name:  "json truncated",
			paths: []string{"testdata/bad/truncated.json"},
			want:  "parse testdata/bad/truncated.json: line 2: unexpected end of JSON input",
		},
		{
			name:  "duplicate key",
			paths: []string{"testdata/bad/dup.yaml"},
			want:  `parse testdata/bad/dup.yaml: line 4: mapping key "b" already defined at line 2`,
		},
		{
			name:  "top level list",
			paths: []string{"testdata/bad/toplist.yaml"},
			want:  "parse testdata/bad/toplist.yaml: line 1: the top level must be a mapping, got a sequence",
		},
		{
			name:  "merge of a scalar",
			paths: []string{"testdata/bad/merge.yaml"},
			want:  "parse testdata/bad/merge.yaml: line 2: a merge key needs a mapping or a list of mappings, got a scalar",
		},
		{
			name:  "bad file in a directory is named",
			paths: []string{"testdata/bad"},
			want:  `parse testdata/bad/dup.json: line 4: object key "b" already defined at line 3`,
		},
		{
			name:   "bad filter",
			paths:  []string{"testdata/dir"},
			filter: "[a-",
			want:   `file filter "[a-": syntax error in pattern`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromFiles(tt.paths, tt.filter, []string{"/"})
			if err == nil {
				t.Fatalf("FromFiles = %v, want error %q", s.Pairs(), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// TestFromFilesAliasLimits checks that self-referencing aliases and
// exponentially nested aliases fail instead of running away.
func TestFromFilesAliasLimits(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		prev := fmt.Sprintf("*l%d", i-1)
		laughs.WriteString(fmt.Sprintf("l%d: &l%d [%s%s]\n", i, i, strings.Repeat(prev+", ", 9), prev))
	}
	var merges strings.Builder
	merges.WriteString("m0: &m0 {a: 1, b: 2}\n")
	for i := 1; i <= 30; i++ {
		merges.WriteString(fmt.Sprintf("m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1))
	}
	tests := []struct {
		name, data, want string
	}{
		{
			name: "alias inside its own anchor",
			data: "a: &x\n  b: *x\n",
			want: "line 2: alias *x refers to a node that contains it",
		},
		{
			name: "merge of itself",
			data: "a: &x\n  <<: *x\n",
			want: "line 2: merged mapping contains the merge",
		},
		{
			name: "exponential aliases",
			data: laughs.String(),
			want: "more than 10000 values, aliases nested too deep",
		},
		{
			name: "exponential merges",
			data: merges.String(),
			want: "more than 10000 values, aliases nested too deep",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "x.yaml")
			if err := os.WriteFile(f, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := fromFiles([]string{f}, "", []string{"/"}, 10000)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), f) {
				t.Errorf("error = %v, want one naming %s and containing %q", err, f, tt.want)
			}
		})
	}
}
