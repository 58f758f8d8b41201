package processor

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/etcdconfd/confd/pkg/filesync"
	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/resource"
)

// testSyncer is a Syncer whose background work is done before the test
// ends.
func testSyncer(t *testing.T, opts filesync.Options) *filesync.Syncer {
	t.Helper()
	s := filesync.New(quietLogger(), opts)
	t.Cleanup(s.Wait)
	return s
}

func quietLogger() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// newResource writes a template and returns a resource that renders it to a
// file in dir.
func newResource(t *testing.T, dir, name, tmpl string, keys ...string) resource.Resource {
	t.Helper()
	src := filepath.Join(dir, name+".tmpl")
	if err := os.WriteFile(src, []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	return resource.Resource{
		Name: name + ".toml", Src: src, Dest: filepath.Join(dir, name+".out"),
		Keys: keys, UID: -1, GID: -1,
	}
}

func TestOnceRendersEveryResourceFromOneSnapshot(t *testing.T) {
	dir := t.TempDir()
	snap := kv.FromMap(42, map[string]string{
		"/app/servers/a": "10.0.0.1:80",
		"/app/servers/b": "10.0.0.2:80",
		"/db/host":       "10.0.1.1",
	})
	var calls [][]string
	src := SourceFunc(func(_ context.Context, roots []string) (*kv.Snapshot, error) {
		calls = append(calls, roots)
		return snap, nil
	})
	resources := []resource.Resource{
		newResource(t, dir, "haproxy", `{{range gets "/app/servers/*"}}server {{base .Key}} {{.Value}}
{{end}}`, "/app/servers"),
		newResource(t, dir, "db", `host={{getv "/db/host"}}`, "/db"),
	}
	p, errs := New(quietLogger(), src, testSyncer(t, filesync.Options{}), resources, Options{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := p.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"/app/servers", "/db"}}; !reflect.DeepEqual(calls, want) {
		t.Errorf("source read %q, want one read of %q", calls, want)
	}
	assertFile(t, filepath.Join(dir, "haproxy.out"), "server a 10.0.0.1:80\nserver b 10.0.0.2:80\n")
	assertFile(t, filepath.Join(dir, "db.out"), "host=10.0.1.1")
}

func TestOnceIsolatesFailingResources(t *testing.T) {
	dir := t.TempDir()
	snap := kv.FromMap(1, map[string]string{"/app/x": "1"})
	src := SourceFunc(func(context.Context, []string) (*kv.Snapshot, error) { return snap, nil })
	good := newResource(t, dir, "good", `x={{getv "/app/x"}}`, "/app")
	missing := newResource(t, dir, "missing", `y={{getv "/app/y"}}`, "/app")
	badTemplate := newResource(t, dir, "bad", `{{range}`, "/app")
	failingCheck := newResource(t, dir, "check", `x={{getv "/app/x"}}`, "/app")
	failingCheck.CheckCmd = "echo nope; exit 3"
	if err := os.WriteFile(missing.Dest, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}

	p, errs := New(quietLogger(), src, testSyncer(t, filesync.Options{}),
		[]resource.Resource{badTemplate, missing, good, failingCheck}, Options{})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "resource bad.toml: parse template") {
		t.Fatalf("New errors = %v, want one parse error for bad.toml", errs)
	}
	err := p.Once(context.Background())
	if err == nil {
		t.Fatal("Once succeeded, want the failures of missing.toml and check.toml")
	}
	var failed []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *Error
		if !errors.As(e, &pe) {
			t.Fatalf("error %v is not a *processor.Error", e)
		}
		failed = append(failed, pe.Resource+":"+pe.Op)
	}
	sort.Strings(failed)
	if want := []string{"check.toml:sync", "missing.toml:render"}; !reflect.DeepEqual(failed, want) {
		t.Errorf("failed = %q, want %q", failed, want)
	}
	if !strings.Contains(err.Error(), "key does not exist: /app/y") {
		t.Errorf("error %q does not name the missing key", err)
	}
	assertFile(t, good.Dest, "x=1")
	assertFile(t, missing.Dest, "previous")
	if _, err := os.Stat(failingCheck.Dest); !os.IsNotExist(err) {
		t.Errorf("dest of a failed check exists: %v", err)
	}
}

func TestOnceReportsSourceError(t *testing.T) {
	dir := t.TempDir()
	src := SourceFunc(func(context.Context, []string) (*kv.Snapshot, error) {
		return nil, errors.New("etcd down")
	})
	p, _ := New(quietLogger(), src, testSyncer(t, filesync.Options{}),
		[]resource.Resource{newResource(t, dir, "a", "x", "/a")}, Options{})
	if err := p.Once(context.Background()); err == nil || !strings.Contains(err.Error(), "etcd down") {
		t.Fatalf("Once = %v, want the source error", err)
	}
}

func TestOnceNoopWritesDiff(t *testing.T) {
	dir := t.TempDir()
	snap := kv.FromMap(1, map[string]string{"/a": "new"})
	src := SourceFunc(func(context.Context, []string) (*kv.Snapshot, error) { return snap, nil })
	r := newResource(t, dir, "a", `{{getv "/a"}}
`, "/a")
	if err := os.WriteFile(r.Dest, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var diff strings.Builder
	p, _ := New(quietLogger(), src, testSyncer(t, filesync.Options{Noop: true}),
		[]resource.Resource{r}, Options{DiffOut: &diff})
	if err := p.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(diff.String(), "-old\n+new\n") {
		t.Errorf("diff = %q", diff.String())
	}
	assertFile(t, r.Dest, "old\n")
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s = %q, want %q", filepath.Base(path), got, want)
	}
}
