package integration

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

// httpGet returns the status and body of GET url, or 0 and the error text
// when the request failed.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the sample named series (name and
// labels, as exposed) in a /metrics body, and whether it is there.
func metricValue(body, series string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

func TestMetricsAndHealth(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "v0")
	dir, out := confDir(t, serversResource)
	addr := deadEndpoint(t)
	base := "http://" + addr
	startDaemon(t, nil, "-watch", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir, "-metrics-addr", addr)

	eventually(t, 10*time.Second, "/healthz to answer 200", func() bool {
		code, _ := httpGet(t, base+"/healthz")
		return code == http.StatusOK
	})
	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
	}
	eventually(t, 10*time.Second, "/readyz to answer 200", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == http.StatusOK
	})
	waitFile(t, filepath.Join(out, "servers.conf"), renderServers(map[string]string{"a": "v0", "b": "v0"}), 5*time.Second)

	_, body := httpGet(t, base+"/metrics")
	if n, ok := metricValue(body, `confd_renders_total{resource="servers.toml",result="ok"}`); !ok || n < 1 {
		t.Errorf("confd_renders_total{resource=\"servers.toml\",result=\"ok\"} = %v (present %v), want >= 1\n%s", n, ok, body)
	}
	if n, ok := metricValue(body, "confd_etcd_up"); !ok || n != 1 {
		t.Errorf("confd_etcd_up = %v (present %v), want 1", n, ok)
	}

	putPair(t, cli, "v1")
	resp, err := cli.Get(ctx10(t), "/app/servers/a")
	if err != nil {
		t.Fatalf("get /app/servers/a: %v", err)
	}
	want := float64(resp.Header.Revision)
	waitFile(t, filepath.Join(out, "servers.conf"), renderServers(map[string]string{"a": "v1", "b": "v1"}), 5*time.Second)
	var got float64
	eventually(t, 5*time.Second, "confd_resource_revision to reach etcd's revision", func() bool {
		_, body = httpGet(t, base+"/metrics")
		got, _ = metricValue(body, `confd_resource_revision{resource="servers.toml"}`)
		return got == want
	})
	if last, ok := metricValue(body, "confd_last_event_revision"); !ok || last != want {
		t.Errorf("confd_last_event_revision = %v (present %v), want %v", last, ok, want)
	}
	if p, ok := metricValue(body, `confd_resource_pending{resource="servers.toml"}`); !ok || p != 0 {
		t.Errorf("confd_resource_pending = %v (present %v), want 0", p, ok)
	}
}

func TestMetricsReadyzNamesFailingResource(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putPair(t, cli, "v0")
	files := map[string]string{
		"conf.d/failing.toml": "[template]\nsrc = \"servers.tmpl\"\ndest = \"DEST/failing.conf\"\nkeys = [\"/app/servers\"]\ncheck_cmd = \"echo refused; exit 1\"\n",
	}
	for k, v := range serversResource {
		files[k] = v
	}
	dir, out := confDir(t, files)
	addr := deadEndpoint(t)
	base := "http://" + addr
	d := startDaemon(t, nil, "-watch", "-node", hostPort(e.Endpoints()[0]), "-confdir", dir, "-metrics-addr", addr)
	waitFile(t, filepath.Join(out, "servers.conf"), renderServers(map[string]string{"a": "v0", "b": "v0"}), 10*time.Second)
	d.waitLog(t, "initial sync done", 10*time.Second)

	var code int
	var body string
	eventually(t, 10*time.Second, "a check failure counted", func() bool {
		_, m := httpGet(t, base+"/metrics")
		n, _ := metricValue(m, `confd_checks_total{resource="failing.toml",result="error"}`)
		return n >= 1
	})
	code, body = httpGet(t, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz = %d, want 503; body:\n%s", code, body)
	}
	if !strings.Contains(body, "resource failing.toml: never synced") || !strings.Contains(body, "refused") {
		t.Errorf("GET /readyz body does not name failing.toml and its check output:\n%s", body)
	}
	if strings.Contains(body, "servers.toml") {
		t.Errorf("GET /readyz body names servers.toml, which synced:\n%s", body)
	}
	_, m := httpGet(t, base+"/metrics")
	if n, ok := metricValue(m, `confd_renders_total{resource="failing.toml",result="error"}`); !ok || n < 1 {
		t.Errorf("confd_renders_total{resource=\"failing.toml\",result=\"error\"} = %v (present %v), want >= 1", n, ok)
	}
	if p, ok := metricValue(m, `confd_resource_pending{resource="failing.toml"}`); !ok || p != 1 {
		t.Errorf("confd_resource_pending{resource=\"failing.toml\"} = %v (present %v), want 1", p, ok)
	}
}
