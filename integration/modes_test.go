package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// twoResources are a good resource (a) whose check records what it saw, and
// a second one (b).
var twoResources = map[string]string{
	"conf.d/a.toml": "[template]\nsrc = \"a.tmpl\"\ndest = \"DEST/a.conf\"\nkeys = [\"/app\"]\n" +
		"check_cmd = \"cp {{.src}} DEST/a.checked\"\nreload_cmd = \"touch DEST/a.reloaded\"\n",
	"templates/a.tmpl": "a={{getv \"/app/a\"}}\n",
	"conf.d/b.toml":    "[template]\nsrc = \"b.tmpl\"\ndest = \"DEST/b.conf\"\nkeys = [\"/app\"]\n",
	"templates/b.tmpl": "b={{getv \"/app/b\"}}\n",
}

func TestCheckConfig(t *testing.T) {
	dir, out := confDir(t, twoResources)
	// No etcd anywhere: -check-config must not need one.
	args := []string{"-check-config", "-node", deadEndpoint(t), "-confdir", dir}
	r := runConfd(t, nil, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "configuration OK: 2 template resource(s)") {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}

	broken := map[string]string{
		"conf.d/c.toml":    "[template]\nsrc = \"c.tmpl\"\ndest = \"DEST/c.conf\"\nkeys = [\"/app\"]\nmode = \"8\"\n",
		"templates/c.tmpl": "{{getv}",
		"conf.d/d.toml":    "[template]\nsrc = \"a.tmpl\"\ndest = \"DEST/d.conf\"\nkeys = [\"/app\"]\ncheck_cmd = \"test {{.nope\"\n",
	}
	for name, content := range broken {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(content, "DEST", out)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r = runConfd(t, nil, args...)
	if r.code != 1 || !strings.Contains(r.stdout, "2 problem(s)") {
		t.Errorf("exit %d, stdout %q; want 1 and two problems", r.code, r.stdout)
	}
	for _, want := range []string{"c.toml:5", "template.mode", "d.toml"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("-check-config wrote %d files", len(entries))
	}
	// The bad template of c.toml is reported once its resource parses.
	if err := os.WriteFile(filepath.Join(dir, "conf.d", "c.toml"),
		[]byte(strings.NewReplacer("mode = \"8\"\n", "", "DEST", out).Replace(broken["conf.d/c.toml"])), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runConfd(t, nil, append(args, "-resource", "c")...)
	if r.code != 1 || !strings.Contains(r.stderr, "c.tmpl:1") {
		t.Errorf("exit %d; stderr does not name c.tmpl:1", r.code)
	}
}

func TestCheckOnly(t *testing.T) {
	e := etcdtest.Start(t)
	put(t, e.Client(t), "/app/a", "new-a", "/app/b", "new-b")
	dir, out := confDir(t, twoResources)
	if err := os.WriteFile(filepath.Join(out, "a.conf"), []byte("a=old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runConfd(t, nil, "-check", "-node", e.Endpoints()[0], "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if n := strings.Count(r.stderr, "check passed"); n != 2 {
		t.Errorf("%d resources logged check passed, want 2", n)
	}
	if got := readFile(t, filepath.Join(out, "a.checked")); got != "a=new-a\n" {
		t.Errorf("check_cmd saw %q", got)
	}
	if got := readFile(t, filepath.Join(out, "a.conf")); got != "a=old\n" {
		t.Errorf("-check changed a dest: %q", got)
	}
	assertMissing(t, filepath.Join(out, "b.conf"))
	assertMissing(t, filepath.Join(out, "a.reloaded"))
	assertNoStageFiles(t, out)
}

func TestResourceFlag(t *testing.T) {
	e := etcdtest.Start(t)
	put(t, e.Client(t), "/app/a", "1", "/app/b", "2")
	files := map[string]string{"conf.d/broken.toml": "[template\n"}
	for k, v := range twoResources {
		files[k] = v
	}
	dir, out := confDir(t, files)
	r := runConfd(t, nil, "-onetime", "-resource", "b", "-node", e.Endpoints()[0], "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("exit %d: a broken resource that was not selected must not fail the run", r.code)
	}
	if got := readFile(t, filepath.Join(out, "b.conf")); got != "b=2\n" {
		t.Errorf("b.conf = %q", got)
	}
	assertMissing(t, filepath.Join(out, "a.conf"))

	r = runConfd(t, nil, "-onetime", "-resource", "nope", "-node", e.Endpoints()[0], "-confdir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "-resource nope: no such template resource") {
		t.Errorf("unknown -resource: exit %d", r.code)
	}
}
