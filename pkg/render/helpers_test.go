package render

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/etcdconfd/confd/pkg/kv"
)

// seedKeys are the keys of the HAProxy walk-through that the original
// confd's users know.
func seedKeys() map[string]string {
	return map[string]string{
		"/app/servers/backstabbing_rosalind": "192.168.1.22:49156",
		"/app/servers/cocky_morse":           "192.168.1.22:49158",
		"/app/servers/goofy_goldstine":       "192.168.1.22:49160",
		"/app/servers/prickly_blackwell":     "192.168.1.22:49162",
	}
}

// testKeys are seedKeys plus keys for the other functions.
func testKeys() map[string]string {
	m := seedKeys()
	for k, v := range map[string]string{
		"/app/config/json":     `{"host":"db.internal","port":5432,"tags":["a","b"]}`,
		"/app/config/list":     `["x","y","z"]`,
		"/app/config/port":     "8080",
		"/app/config/enabled":  "true",
		"/app/config/b64":      "aGVsbG8gd29ybGQ=",
		"/app/config/csv":      "a,b,c",
		"/app/config/empty":    "",
		"/svc/api/1":           "10.0.0.1",
		"/svc/api/2":           "10.0.0.2",
		"/svc/web/1":           "10.0.1.1",
		"/svc/web/deep/x":      "1",
		"/svc/leaf":            "l",
		"/lengths/a":           "1",
		"/lengths/bbb":         "3",
		"/lengths/cc":          "2",
		"/lengths/dd":          "2b",
		"/lengths/aaaa/nested": "4",
	} {
		m[k] = v
	}
	return m
}

func storeOf(m map[string]string) *kv.View {
	return kv.FromMap(1, m).All()
}

// fixedNow is the clock of every test.
var fixedNow = time.Date(2024, time.May, 1, 12, 30, 0, 0, time.UTC)

// testOptions reads a fixed environment, a fixed clock and an in-memory
// file system, and a resolver that fails every lookup.
func testOptions() Options {
	env := map[string]string{"HOSTNAME": "web1", "EMPTY": ""}
	files := fstest.MapFS{"etc/haproxy/haproxy.cfg": {Data: []byte("x")}}
	return Options{
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Now:    func() time.Time { return fixedNow },
		Stat: func(name string) (fs.FileInfo, error) {
			if name == "/denied/file" {
				return nil, fs.ErrPermission
			}
			return fs.Stat(files, strings.TrimPrefix(name, "/"))
		},
		Resolver: failingResolver(),
	}
}

// errNoDNS is what failingResolver's dial returns.
var errNoDNS = errors.New("no dns in this test")

func failingResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errNoDNS
	}}
}

// renderString parses and executes text against s.
func renderString(t *testing.T, text string, s Store, opts Options) (string, error) {
	t.Helper()
	tmpl, err := Parse("test.tmpl", text, opts)
	if err != nil {
		return "", err
	}
	out, err := tmpl.Execute(context.Background(), s)
	return string(out), err
}
