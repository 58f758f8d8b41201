package render

import (
	"errors"
	"strings"
	"testing"

	"github.com/etcdconfd/confd/pkg/kv"
)

type funcCase struct {
	name    string
	tmpl    string
	want    string
	wantErr string // a substring of the error; "" means no error
}

func runFuncCases(t *testing.T, s Store, opts Options, cases []funcCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderString(t, tc.tmpl, s, opts)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("%s: got output %q, want an error containing %q", tc.tmpl, got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s: got error %q, want it to contain %q", tc.tmpl, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.tmpl, err)
			}
			if got != tc.want {
				t.Errorf("%s:\ngot  %q\nwant %q", tc.tmpl, got, tc.want)
			}
		})
	}
}

func TestStoreFuncs(t *testing.T) {
	runFuncCases(t, storeOf(testKeys()), testOptions(), []funcCase{
		{"get", `{{with get "/app/servers/cocky_morse"}}{{.Key}}={{.Value}}{{end}}`, "/app/servers/cocky_morse=192.168.1.22:49158", ""},
		{"get missing", `{{get "/nope"}}`, "", "key does not exist: /nope"},
		{"gets", `{{range gets "/svc/api/*"}}{{.Key}}={{.Value}};{{end}}`, "/svc/api/1=10.0.0.1;/svc/api/2=10.0.0.2;", ""},
		{"gets star does not cross slash", `{{range gets "/svc/*"}}{{.Key}};{{end}}`, "/svc/leaf;", ""},
		{"gets no match", `{{len (gets "/none/*")}}`, "0", ""},
		{"gets bad pattern", `{{gets "/app/[x"}}`, "", "syntax error in pattern"},
		{"getv", `{{getv "/app/config/port"}}`, "8080", ""},
		{"getv empty value", `[{{getv "/app/config/empty" "dflt"}}]`, "[]", ""},
		{"getv default", `{{getv "/nope" "fallback"}}`, "fallback", ""},
		{"getv missing", `{{getv "/nope"}}`, "", "key does not exist: /nope"},
		{"getvs sorted by value", `{{join (getvs "/lengths/*") ","}}`, "1,2,2b,3", ""},
		{"getvs no match", `{{len (getvs "/none/*")}}`, "0", ""},
		{"ls", `{{join (ls "/svc") ","}}`, "api,leaf,web", ""},
		{"ls trailing slash", `{{join (ls "/app/servers/") ","}}`, "backstabbing_rosalind,cocky_morse,goofy_goldstine,prickly_blackwell", ""},
		{"ls root", `{{join (ls "/") ","}}`, "app,lengths,svc", ""},
		{"ls missing", `{{len (ls "/none")}}`, "0", ""},
		{"lsdir", `{{join (lsdir "/svc") ","}}`, "api,web", ""},
		{"lsdir nested", `{{join (lsdir "/svc/web") ","}}`, "deep", ""},
		{"lsdir root", `{{join (lsdir "/") ","}}`, "app,lengths,svc", ""},
		{"lsdir missing", `{{len (lsdir "/none")}}`, "0", ""},
		{"exists", `{{exists "/svc/leaf"}} {{exists "/svc"}} {{exists "/nope"}}`, "true false false", ""},
	})
}

func TestStoreFuncsWithPrefixView(t *testing.T) {
	snap := kv.FromMap(1, map[string]string{
		"/production/app/a": "1",
		"/production/app/b": "2",
		"/production/db/x":  "hidden",
		"/staging/app/a":    "other",
	})
	s := snap.View("/production", []string{"/app"})
	runFuncCases(t, s, testOptions(), []funcCase{
		{"getv", `{{getv "/app/a"}}`, "1", ""},
		{"gets", `{{range gets "/app/*"}}{{.Key}}={{.Value}};{{end}}`, "/app/a=1;/app/b=2;", ""},
		{"outside keys", `{{exists "/db/x"}}`, "false", ""},
		{"ls", `{{join (ls "/app") ","}}`, "a,b", ""},
	})
}

func TestMissingKeyErrorIsKVNotExist(t *testing.T) {
	_, err := renderString(t, `{{getv "/nope"}}`, storeOf(nil), testOptions())
	if !errors.Is(err, kv.ErrNotExist) {
		t.Fatalf("got %v, want an error matching kv.ErrNotExist", err)
	}
	var ke *kv.KeyError
	if !errors.As(err, &ke) || ke.Key != "/nope" {
		t.Fatalf("got %v, want a *kv.KeyError for /nope", err)
	}
}

func TestStringFuncs(t *testing.T) {
	runFuncCases(t, storeOf(testKeys()), testOptions(), []funcCase{
		{"base", `{{base "/app/servers/cocky_morse"}}`, "cocky_morse", ""},
		{"base root", `{{base "/"}}`, "/", ""},
		{"dir", `{{dir "/app/servers/cocky_morse"}}`, "/app/servers", ""},
		{"split", `{{$u := split (getv "/app/servers/cocky_morse") ":"}}{{index $u 0}} {{index $u 1}} {{len $u}}`, "192.168.1.22 49158 2", ""},
		{"split is strings.Split", `{{range split "a,b,,c" ","}}[{{.}}]{{end}}`, "[a][b][][c]", ""},
		{"join list sep", `{{join (split "a,b,c" ",") "-"}}`, "a-b-c", ""},
		{"join wrong order", `{{join "-" (split "a,b" ",")}}`, "", "for arg of type []string"},
		{"toUpper", `{{toUpper "haProxy"}}`, "HAPROXY", ""},
		{"toLower", `{{toLower "HaProxy"}}`, "haproxy", ""},
		{"contains s substr", `{{contains "haproxy" "prox"}} {{contains "prox" "haproxy"}}`, "true false", ""},
		{"replace", `{{replace "a.b.c.d" "." "-" 2}} {{replace "a.b.c" "." "" -1}}`, "a-b-c.d abc", ""},
		{"replace needs n", `{{replace "a.b" "." "-"}}`, "", "wrong number of args for replace"},
		{"trimSuffix s suffix", `{{trimSuffix "web.example.com" ".example.com"}}`, "web", ""},
		{"base64Encode", `{{base64Encode "hello world"}}`, "aGVsbG8gd29ybGQ=", ""},
		{"base64Decode", `{{base64Decode (getv "/app/config/b64")}}`, "hello world", ""},
		{"base64Decode bad", `{{base64Decode "!!"}}`, "", "decode base64"},
	})
}

func TestDataFuncs(t *testing.T) {
	runFuncCases(t, storeOf(testKeys()), testOptions(), []funcCase{
		{"json", `{{$c := json (getv "/app/config/json")}}{{$c.host}}:{{$c.port}} {{index $c.tags 1}}`, "db.internal:5432 b", ""},
		{"json invalid", `{{json "{nope"}}`, "", "decode json object"},
		{"json array is not an object", `{{json "[1]"}}`, "", "decode json object"},
		{"jsonArray", `{{range jsonArray (getv "/app/config/list")}}{{.}};{{end}}`, "x;y;z;", ""},
		{"jsonArray invalid", `{{jsonArray "{}"}}`, "", "decode json array"},
		{"map", `{{$m := map "name" "es" "port" 9200}}{{$m.name}}:{{$m.port}}`, "es:9200", ""},
		{"map empty", `{{len (map)}}`, "0", ""},
		{"map odd", `{{map "a" 1 "b"}}`, "", "odd number of arguments (3)"},
		{"map non-string key", `{{map "a" 1 2 3}}`, "", "key 2 is int, want string"},
		{"parseBool", `{{if parseBool (getv "/app/config/enabled")}}on{{end}}`, "on", ""},
		{"parseBool bad", `{{parseBool "maybe"}}`, "", "invalid syntax"},
		{"atoi", `{{add (atoi (getv "/app/config/port")) 1}}`, "8081", ""},
		{"atoi bad", `{{atoi "80a"}}`, "", "invalid syntax"},
		{"reverse gets", `{{range reverse (gets "/svc/api/*")}}{{.Value}};{{end}}`, "10.0.0.2;10.0.0.1;", ""},
		{"reverse strings", `{{join (reverse (ls "/svc")) ","}}`, "web,leaf,api", ""},
		{"reverse seq", `{{reverse (seq 1 3)}}`, "[3 2 1]", ""},
		{"reverse empty", `{{len (reverse (gets "/none/*"))}}`, "0", ""},
		{"reverse non-list unchanged", `{{reverse "abc"}}`, "abc", ""},
		{"sortByLength", `{{join (sortByLength (ls "/lengths")) ","}}`, "a,cc,dd,bbb,aaaa", ""},
		{"sortKVByLength", `{{range sortKVByLength (gets "/lengths/*")}}{{.Key}};{{end}}`, "/lengths/a;/lengths/cc;/lengths/dd;/lengths/bbb;", ""},
	})
}

func TestArithmeticFuncs(t *testing.T) {
	runFuncCases(t, storeOf(nil), testOptions(), []funcCase{
		{"add", `{{add 2 3}}`, "5", ""},
		{"sub", `{{sub 2 3}}`, "-1", ""},
		{"mul", `{{mul 4 3}}`, "12", ""},
		{"div", `{{div 7 2}}`, "3", ""},
		{"div negative", `{{div -7 2}}`, "-3", ""},
		{"mod", `{{mod 7 3}}`, "1", ""},
		{"div by zero", `{{div 1 0}}`, "", "error calling div: integer divide by zero"},
		{"mod by zero", `{{mod 1 0}}`, "", "error calling mod: integer divide by zero"},
		{"add needs ints", `{{add "1" 2}}`, "", "expected integer"},
		{"seq", `{{seq 3 6}}`, "[3 4 5 6]", ""},
		{"seq one", `{{seq 2 2}}`, "[2]", ""},
		{"seq empty", `{{seq 3 1}} {{len (seq 3 1)}}`, "[] 0", ""},
		{"seq range", `{{range seq 1 3}}{{.}}{{end}}`, "123", ""},
		{"seq too long", `{{seq 0 100000000}}`, "", "more than 1048576 numbers"},
		{"seq overflow", `{{seq -9223372036854775808 9223372036854775807}}`, "", "more than"},
	})
}

func TestEnvironmentFuncs(t *testing.T) {
	runFuncCases(t, storeOf(nil), testOptions(), []funcCase{
		{"getenv", `{{getenv "HOSTNAME"}}`, "web1", ""},
		{"getenv unset", `[{{getenv "NOPE"}}]`, "[]", ""},
		{"getenv default", `{{getenv "NOPE" "dflt"}}`, "dflt", ""},
		{"getenv empty uses default", `{{getenv "EMPTY" "dflt"}}`, "dflt", ""},
		{"getenv set ignores default", `{{getenv "HOSTNAME" "dflt"}}`, "web1", ""},
		{"sprig env", `{{env "HOSTNAME"}}`, "web1", ""},
		{"sprig expandenv", `{{expandenv "host=$HOSTNAME"}}`, "host=web1", ""},
		{"datetime", `{{datetime.Format "2006-01-02T15:04:05Z07:00"}}`, "2024-05-01T12:30:00Z", ""},
		{"datetime year", `{{datetime.Year}}`, "2024", ""},
		{"sprig now", `{{now.Year}}`, "2024", ""},
		{"fileExists", `{{fileExists "/etc/haproxy/haproxy.cfg"}} {{fileExists "/etc/nope"}}`, "true false", ""},
		{"fileExists error", `{{fileExists "/denied/file"}}`, "", "stat /denied/file: permission denied"},
	})
}

// TestDefaultOptions checks that the zero Options read the real
// environment, clock and file system.
func TestDefaultOptions(t *testing.T) {
	t.Setenv("RENDER_TEST_VAR", "from-env")
	dir := t.TempDir()
	tmpl := `{{getenv "RENDER_TEST_VAR"}} {{fileExists "` + dir + `"}} {{fileExists "` + dir + `/missing"}} {{gt datetime.Year 2000}}`
	got, err := renderString(t, tmpl, storeOf(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "from-env true false true"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReverseDoesNotChangeItsArgument(t *testing.T) {
	pairs := []kv.KVPair{{Key: "/a", Value: "1"}, {Key: "/b", Value: "2"}, {Key: "/c", Value: "3"}}
	got := reverse(pairs).([]kv.KVPair)
	if got[0].Key != "/c" || got[2].Key != "/a" {
		t.Errorf("reverse = %v, want /c first and /a last", got)
	}
	if pairs[0].Key != "/a" || pairs[2].Key != "/c" {
		t.Errorf("reverse changed its argument to %v", pairs)
	}
	strs := []string{"a", "b", "c"}
	if got := reverse(strs).([]string); strings.Join(got, "") != "cba" {
		t.Errorf("reverse = %v, want [c b a]", got)
	}
	if strings.Join(strs, "") != "abc" {
		t.Errorf("reverse changed its argument to %v", strs)
	}
	arr := [3]int{1, 2, 3}
	if got := reverse(arr).([]int); got[0] != 3 || got[2] != 1 {
		t.Errorf("reverse(array) = %v, want [3 2 1]", got)
	}
	var nilSlice []any
	if got := reverse(nilSlice); got == nil || len(got.([]any)) != 0 {
		t.Errorf("reverse(nil slice) = %#v, want an empty []any", got)
	}
}

// storeWithShared returns the same slice from every GetAll, as a store that
// caches its results would; templates must not be able to change it.
type storeWithShared struct {
	Store
	pairs []kv.KVPair
}

func (s storeWithShared) GetAll(string) ([]kv.KVPair, error) { return s.pairs, nil }

func TestListFuncsDoNotChangeStoreSlices(t *testing.T) {
	pairs := []kv.KVPair{{Key: "/ccc", Value: "1"}, {Key: "/a", Value: "2"}, {Key: "/bb", Value: "3"}}
	s := storeWithShared{Store: storeOf(nil), pairs: pairs}
	got, err := renderString(t, `{{range reverse (gets "*")}}{{.Key}};{{end}}|{{range sortKVByLength (gets "*")}}{{.Key}};{{end}}|{{range gets "*"}}{{.Key}};{{end}}`, s, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if want := "/bb;/a;/ccc;|/a;/bb;/ccc;|/ccc;/a;/bb;"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if pairs[0].Key != "/ccc" || pairs[1].Key != "/a" || pairs[2].Key != "/bb" {
		t.Errorf("store slice changed to %v", pairs)
	}
	strs := []string{"ccc", "a", "bb"}
	if got := sortByLength(strs); strings.Join(got, ",") != "a,bb,ccc" {
		t.Errorf("sortByLength = %v, want [a bb ccc]", got)
	}
	if strings.Join(strs, ",") != "ccc,a,bb" {
		t.Errorf("sortByLength changed its argument to %v", strs)
	}
}

func TestSortByLengthIsStable(t *testing.T) {
	in := []string{"dd", "bb", "a", "cc", "aa", "e"}
	got := strings.Join(sortByLength(in), ",")
	if want := "a,e,dd,bb,cc,aa"; got != want {
		t.Errorf("sortByLength(%v) = %s, want %s", in, got, want)
	}
}
