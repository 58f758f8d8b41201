package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// seedTemplate is the HAProxy template of the HECD article, one line as
// printed there.
const seedTemplate = `global log 127.0.0.1 local3 maxconn 5000 uid 99 gid 99 daemon defaults log 127.0.0.1 local3 mode http option dontlognull retries 3 option redispatch maxconn 2000 contimeout 5000 clitimeout 50000 srvtimeout 50000 listen frontend 0.0.0.0:80 mode http balance roundrobin maxconn 2000 option forwardfor {{range gets "/app/servers/*"}} server {{base .Key}} {{.Value}} check inter 5000 fall 1 rise 2 {{end}} stats enable stats uri /admin-status stats auth admin:123456 stats admin if TRUE
`

// seedKeys are the containers registered in the article.
var seedKeys = []string{
	"/app/servers/cocky_morse", "192.168.1.22:49156",
	"/app/servers/goofy_goldstine", "192.168.1.22:49158",
	"/app/servers/prickly_blackwell", "192.168.1.22:49154",
}

var haproxyResource = map[string]string{
	"conf.d/haproxy.toml": `[template]
src = "haproxy.cfg.tmpl"
dest = "DEST/haproxy.cfg"
keys = [
  "/app/servers",
]
`,
	"templates/haproxy.cfg.tmpl": seedTemplate,
}

func TestOnetimeSeedHAProxy(t *testing.T) {
	e := etcdtest.Start(t)
	put(t, e.Client(t), seedKeys...)
	put(t, e.Client(t), "/app/serversx/not-me", "1.2.3.4:5")
	dir, out := confDir(t, haproxyResource)

	// The article's command line: -verbose, a node without scheme.
	r := runConfd(t, nil, "-verbose", "-onetime", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if !strings.Contains(r.stderr, "-verbose is deprecated") {
		t.Errorf("no deprecation warning for -verbose in:\n%s", r.stderr)
	}
	golden(t, "seed-haproxy.cfg", readFile(t, filepath.Join(out, "haproxy.cfg")))
}

func TestOnetimeDeadFirstEndpoint(t *testing.T) {
	e := etcdtest.Start(t)
	put(t, e.Client(t), seedKeys...)
	dir, out := confDir(t, haproxyResource)
	nodes := deadEndpoint(t) + "," + hostPort(e.Endpoints()[0])
	r := runConfd(t, nil, "-onetime", "-backend", "etcd", "-node", nodes, "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if got := readFile(t, filepath.Join(out, "haproxy.cfg")); !strings.Contains(got, "server cocky_morse 192.168.1.22:49156") {
		t.Errorf("rendered file lacks a server:\n%s", got)
	}
}

func TestOnetimeEtcdUnreachable(t *testing.T) {
	dir, out := confDir(t, haproxyResource)
	r := runConfd(t, nil, "-onetime", "-node", deadEndpoint(t), "-confdir", dir,
		"-dial-timeout", "1s", "-request-timeout", "2s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if _, err := os.Stat(filepath.Join(out, "haproxy.cfg")); !os.IsNotExist(err) {
		t.Errorf("dest written without etcd: %v", err)
	}
}

func TestOnetimeConfigPrecedence(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	put(t, cli, "/production/app/servers/a", "10.0.0.1:80", "/staging/app/servers/a", "10.0.0.2:80")
	files := map[string]string{
		"conf.d/a.toml": `[template]
src = "a.tmpl"
dest = "DEST/a.conf"
keys = ["/app/servers"]
`,
		"templates/a.tmpl": `{{range gets "/app/servers/*"}}{{.Key}}={{.Value}}{{end}}`,
	}
	dir, out := confDir(t, files)
	// The file names the etcd node and the staging prefix.
	conf := "backend = \"etcdv3\"\nnodes = [\"" + hostPort(e.Endpoints()[0]) + "\"]\nprefix = \"/staging\"\n"
	if err := os.WriteFile(filepath.Join(dir, "confd.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(out, "a.conf")

	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"file", nil, nil, "/app/servers/a=10.0.0.2:80"},
		{"env over file", []string{"CONFD_PREFIX=/production"}, nil, "/app/servers/a=10.0.0.1:80"},
		{"flag over env", []string{"CONFD_PREFIX=/production"}, []string{"-prefix", "/staging"}, "/app/servers/a=10.0.0.2:80"},
		{"unset flag keeps file", nil, []string{"-log-level", "debug"}, "/app/servers/a=10.0.0.2:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(dest)
			args := append([]string{"-onetime", "-confdir", dir}, tt.args...)
			if r := runConfd(t, tt.env, args...); r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			if got := readFile(t, dest); got != tt.want {
				t.Errorf("dest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOnetimeModes(t *testing.T) {
	e := etcdtest.Start(t)
	put(t, e.Client(t), "/app/x", "new")
	node := "-node=" + e.Endpoints()[0]
	resource := func(check string) map[string]string {
		return map[string]string{
			"conf.d/x.toml": "[template]\nsrc = \"x.tmpl\"\ndest = \"DEST/x.conf\"\nkeys = [\"/app\"]\n" +
				"check_cmd = \"" + check + "\"\nreload_cmd = \"touch DEST/reloaded\"\n",
			"templates/x.tmpl": "value={{getv \"/app/x\"}}\n",
		}
	}

	t.Run("noop prints a diff and writes nothing", func(t *testing.T) {
		dir, out := confDir(t, resource("true"))
		dest := filepath.Join(out, "x.conf")
		if err := os.WriteFile(dest, []byte("value=old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runConfd(t, nil, "-onetime", "-noop", node, "-confdir", dir)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if !strings.Contains(r.stdout, "-value=old\n+value=new\n") {
			t.Errorf("stdout has no diff:\n%s", r.stdout)
		}
		if got := readFile(t, dest); got != "value=old\n" {
			t.Errorf("noop changed dest to %q", got)
		}
		assertMissing(t, filepath.Join(out, "reloaded"))
	})

	t.Run("check failure keeps dest", func(t *testing.T) {
		dir, out := confDir(t, resource("echo invalid config >&2; exit 4"))
		dest := filepath.Join(out, "x.conf")
		if err := os.WriteFile(dest, []byte("value=old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runConfd(t, nil, "-onetime", node, "-confdir", dir)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1", r.code)
		}
		for _, want := range []string{"x.toml", "check", "exit status 4", "invalid config"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		if got := readFile(t, dest); got != "value=old\n" {
			t.Errorf("dest = %q after failed check", got)
		}
		assertMissing(t, filepath.Join(out, "reloaded"))
		assertNoStageFiles(t, out)
	})

	t.Run("sync-only runs no commands", func(t *testing.T) {
		dir, out := confDir(t, resource("exit 1"))
		r := runConfd(t, nil, "-onetime", "-sync-only", node, "-confdir", dir)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if got := readFile(t, filepath.Join(out, "x.conf")); got != "value=new\n" {
			t.Errorf("dest = %q", got)
		}
		assertMissing(t, filepath.Join(out, "reloaded"))
	})

	t.Run("check and reload run", func(t *testing.T) {
		dir, out := confDir(t, resource("grep -q value=new {{.src}}"))
		r := runConfd(t, nil, "-onetime", node, "-confdir", dir)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if got := readFile(t, filepath.Join(out, "x.conf")); got != "value=new\n" {
			t.Errorf("dest = %q", got)
		}
		if _, err := os.Stat(filepath.Join(out, "reloaded")); err != nil {
			t.Errorf("reload_cmd did not run: %v", err)
		}
		info, err := os.Stat(filepath.Join(out, "x.conf"))
		if err != nil || info.Mode().Perm() != 0o644 {
			t.Errorf("new dest mode = %v, %v; want 0644", info.Mode(), err)
		}
	})

	t.Run("a failed reload is run again by the next run", func(t *testing.T) {
		files := resource("true")
		files["conf.d/x.toml"] = strings.Replace(files["conf.d/x.toml"], "reload_cmd = \"touch DEST/reloaded\"",
			"reload_cmd = \"test ! -e DEST/down && echo reload >> DEST/reloaded\"", 1)
		dir, out := confDir(t, files)
		down := filepath.Join(out, "down")
		if err := os.WriteFile(down, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		for run := 1; run <= 2; run++ {
			r := runConfd(t, nil, "-onetime", node, "-confdir", dir)
			if r.code != 1 || !strings.Contains(r.stderr, "reload failed") {
				t.Fatalf("run %d while the service is down: exit %d, want 1 and the reload failed:\n%s", run, r.code, r.stderr)
			}
		}
		if got := readFile(t, filepath.Join(out, "x.conf")); got != "value=new\n" {
			t.Errorf("dest = %q", got)
		}
		if err := os.Remove(down); err != nil {
			t.Fatal(err)
		}
		// The file is current: only the owed reload runs, once.
		for run := 1; run <= 2; run++ {
			if r := runConfd(t, nil, "-onetime", node, "-confdir", dir); r.code != 0 {
				t.Fatalf("run %d once the service is up: exit %d\n%s", run, r.code, r.stderr)
			}
		}
		if got := readFile(t, filepath.Join(out, "reloaded")); got != "reload\n" {
			t.Errorf("reloads = %q, want one", got)
		}
		assertNoStageFiles(t, out)
	})

	t.Run("keep-stage-file", func(t *testing.T) {
		dir, out := confDir(t, resource("true"))
		if r := runConfd(t, nil, "-onetime", "-keep-stage-file", node, "-confdir", dir); r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		stages, _ := filepath.Glob(filepath.Join(out, ".x.conf.*"))
		if len(stages) != 1 {
			t.Fatalf("stage files = %q, want one", stages)
		}
		if got := readFile(t, stages[0]); got != "value=new\n" {
			t.Errorf("stage file = %q", got)
		}
	})

	t.Run("command timeout kills a hanging check", func(t *testing.T) {
		dir, out := confDir(t, resource("sleep 30"))
		start := time.Now()
		r := runConfd(t, nil, "-onetime", "-command-timeout", "1s", node, "-confdir", dir)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1", r.code)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s with a 1s command timeout", d)
		}
		if !strings.Contains(r.stderr, "timed out") {
			t.Errorf("stderr does not say the check timed out:\n%s", r.stderr)
		}
		assertMissing(t, filepath.Join(out, "x.conf"))
		assertNoStageFiles(t, out)
	})

	t.Run("json logs", func(t *testing.T) {
		dir, _ := confDir(t, resource("true"))
		r := runConfd(t, nil, "-onetime", "-log-format", "json", node, "-confdir", dir)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		found := false
		for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			var entry map[string]any
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
			if entry["resource"] == "x.toml" && entry["revision"] != nil && entry["dest"] != nil {
				found = true
			}
		}
		if !found {
			t.Errorf("no log line with resource, dest and revision:\n%s", r.stderr)
		}
	})
}

func TestOnetimeBrokenResourceDoesNotStopOthers(t *testing.T) {
	e := etcdtest.Start(t)
	put(t, e.Client(t), seedKeys...)
	files := map[string]string{
		"conf.d/broken.toml":         "[template]\nsrc = \"haproxy.cfg.tmpl\"\nmode = \"9z\"\ndest = \"DEST/broken\"\nkeys = [\"/app\"]\n",
		"conf.d/nosrc.toml":          "[template]\nsrc = \"missing.tmpl\"\ndest = \"DEST/nosrc\"\nkeys = [\"/app\"]\n",
		"conf.d/badtmpl.toml":        "[template]\nsrc = \"bad.tmpl\"\ndest = \"DEST/badtmpl\"\nkeys = [\"/app\"]\n",
		"conf.d/missing.toml":        "[template]\nsrc = \"missing-key.tmpl\"\ndest = \"DEST/missing\"\nkeys = [\"/app\"]\n",
		"templates/bad.tmpl":         "{{range gets}",
		"templates/missing-key.tmpl": `{{getv "/app/servers/nope"}}`,
	}
	for k, v := range haproxyResource {
		files[k] = v
	}
	dir, out := confDir(t, files)
	r := runConfd(t, nil, "-onetime", "-node", e.Endpoints()[0], "-confdir", dir)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	for _, want := range []string{
		"broken.toml:3", "template.mode",
		"nosrc.toml", "missing.tmpl",
		"bad.tmpl:1",
		"key does not exist: /app/servers/nope",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if got := readFile(t, filepath.Join(out, "haproxy.cfg")); !strings.Contains(got, "prickly_blackwell") {
		t.Errorf("good resource not rendered:\n%s", got)
	}
	for _, name := range []string{"broken", "nosrc", "badtmpl", "missing"} {
		assertMissing(t, filepath.Join(out, name))
	}
}

func TestOnetimeTLS(t *testing.T) {
	certs := etcdtest.NewCertificates(t)
	e := etcdtest.Start(t, etcdtest.WithTLS(certs.ServerCertFile, certs.ServerKeyFile, certs.CAFile, true))
	put(t, e.Client(t), seedKeys...)
	dir, out := confDir(t, haproxyResource)
	// No scheme: TLS flags make it https.
	r := runConfd(t, nil, "-onetime", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir,
		"-client-cert", certs.ClientCertFile, "-client-key", certs.ClientKeyFile, "-client-ca-keys", certs.CAFile)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	golden(t, "seed-haproxy.cfg", readFile(t, filepath.Join(out, "haproxy.cfg")))

	t.Run("client-insecure skips server verification only", func(t *testing.T) {
		os.Remove(filepath.Join(out, "haproxy.cfg"))
		r := runConfd(t, nil, "-onetime", "-node", "https://"+hostPort(e.Endpoints()[0]), "-confdir", dir,
			"-client-cert", certs.ClientCertFile, "-client-key", certs.ClientKeyFile, "-client-insecure")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if !strings.Contains(r.stderr, "INSECURE") {
			t.Errorf("no loud warning about -client-insecure:\n%s", r.stderr)
		}
		golden(t, "seed-haproxy.cfg", readFile(t, filepath.Join(out, "haproxy.cfg")))
	})

	t.Run("without client certificate", func(t *testing.T) {
		r := runConfd(t, nil, "-onetime", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir,
			"-client-ca-keys", certs.CAFile, "-dial-timeout", "2s", "-request-timeout", "3s")
		if r.code == 0 {
			t.Fatal("succeeded without a client certificate")
		}
	})
}

func TestOnetimeBasicAuth(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	put(t, cli, seedKeys...)
	etcdtest.EnableAuth(t, cli, "reader", "s3cret-pass", "/app/")
	dir, out := confDir(t, haproxyResource)
	args := []string{"-onetime", "-node", e.Endpoints()[0], "-confdir", dir, "-basic-auth", "-username", "reader"}

	r := runConfd(t, nil, append(args, "-password", "wrong-pass")...)
	if r.code == 0 {
		t.Fatal("succeeded with a wrong password")
	}
	if strings.Contains(r.stderr+r.stdout, "wrong-pass") {
		t.Error("the password appears in the output")
	}

	r = runConfd(t, []string{"CONFD_PASSWORD=s3cret-pass"}, append(args, "-log-level", "debug")...)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if strings.Contains(r.stderr+r.stdout, "s3cret-pass") {
		t.Error("the password appears in the output")
	}
	golden(t, "seed-haproxy.cfg", readFile(t, filepath.Join(out, "haproxy.cfg")))

	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(out, "haproxy.cfg"))
	r = runConfd(t, nil, append(args, "-password-file", pwFile, "-log-level", "debug")...)
	if r.code != 0 {
		t.Fatalf("-password-file: exit %d", r.code)
	}
	if strings.Contains(r.stderr+r.stdout, "s3cret-pass") {
		t.Error("the password appears in the output")
	}
	golden(t, "seed-haproxy.cfg", readFile(t, filepath.Join(out, "haproxy.cfg")))
}

func TestOnetimeLocalBackends(t *testing.T) {
	files := map[string]string{
		"conf.d/a.toml": "[template]\nsrc = \"a.tmpl\"\ndest = \"DEST/a.conf\"\nkeys = [\"/app/servers\"]\n",
		"templates/a.tmpl": `{{range gets "/app/servers/*"}}{{base .Key}}={{.Value}}
{{end}}`,
		"keys.yaml": "app:\n  servers:\n    web1: 10.0.0.1:80\n    web2: 10.0.0.2:80\n",
	}
	dir, out := confDir(t, files)
	dest := filepath.Join(out, "a.conf")

	r := runConfd(t, []string{"APP_SERVERS_WEB1=10.9.9.9:80"}, "-onetime", "-backend", "env", "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("env backend: exit %d", r.code)
	}
	if got := readFile(t, dest); got != "web1=10.9.9.9:80\n" {
		t.Errorf("env backend dest = %q", got)
	}

	r = runConfd(t, nil, "-onetime", "-backend", "file", "-file", filepath.Join(dir, "keys.yaml"), "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("file backend: exit %d", r.code)
	}
	if got := readFile(t, dest); got != "web1=10.0.0.1:80\nweb2=10.0.0.2:80\n" {
		t.Errorf("file backend dest = %q", got)
	}

	// -filter selects the files of a directory by name, whatever their
	// extension; the YAML file is left out.
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "more"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "keys.yaml"), []byte("app:\n  servers:\n    web1: 10.0.0.1:80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "more", "servers.conf"), []byte("app:\n  servers:\n    web3: 10.0.0.3:80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runConfd(t, nil, "-onetime", "-backend", "file", "-file", data, "-filter", "*.conf", "-confdir", dir)
	if r.code != 0 {
		t.Fatalf("file backend with -filter: exit %d", r.code)
	}
	if got := readFile(t, dest); got != "web3=10.0.0.3:80\n" {
		t.Errorf("file backend with -filter: dest = %q", got)
	}
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unsupported backend", []string{"-onetime", "-backend", "consul"}, 2, "etcd"},
		{"unknown flag", []string{"-no-such-flag"}, 2, "no-such-flag"},
		{"missing explicit config file", []string{"-onetime", "-config-file", "/nonexistent/confd.toml"}, 1, "/nonexistent/confd.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runConfd(t, nil, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d", r.code, tt.code)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks %q", tt.want)
			}
		})
	}

	t.Run("unsupported backend is one line", func(t *testing.T) {
		r := runConfd(t, nil, "-onetime", "-backend", "redis")
		first, _, _ := strings.Cut(r.stderr, "\n")
		for _, b := range []string{"etcdv3", "env", "file"} {
			if !strings.Contains(first, b) {
				t.Errorf("first line %q does not name backend %s", first, b)
			}
		}
	})

	t.Run("version", func(t *testing.T) {
		r := runConfd(t, nil, "-version")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "confd ") || !strings.Contains(r.stdout, runtime.Version()) ||
			strings.Contains(r.stdout, "unknown") {
			t.Errorf("-version: exit %d, stdout %q", r.code, r.stdout)
		}
	})
}

func assertMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists (err %v), want it missing", path, err)
	}
}

// assertNoStageFiles checks that dir holds no hidden files: no stage file
// and no second name of a replaced file.
func assertNoStageFiles(t *testing.T, dir string) {
	t.Helper()
	// A running daemon removes the second names of the files it replaced
	// once its renames into dir have settled, 50 ms after the first.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stages, _ := filepath.Glob(filepath.Join(dir, ".*"))
		if len(stages) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("stray stage files: %q", stages)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
