package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clock is a settable time source.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newMetrics(t *testing.T, stale time.Duration) (*Metrics, *prometheus.Registry, *clock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	m, err := New(reg, Options{StaleAfter: stale, Now: c.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg, c
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthz(t *testing.T) {
	m, reg, _ := newMetrics(t, time.Second)
	m.SetResources([]string{"a.toml"})
	code, body := get(t, m.Handler(reg), "/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
	}
}

func TestReadyz(t *testing.T) {
	checkFailed := errors.New("resource b.toml: check_cmd exited 1")
	tests := []struct {
		name     string
		steps    func(m *Metrics, c *clock)
		wantCode int
		want     []string // substrings of the body
		notWant  []string
	}{
		{
			name:     "nothing rendered yet",
			steps:    func(*Metrics, *clock) {},
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"resource a.toml: never synced: not rendered yet", "resource b.toml: never synced"},
		},
		{
			name: "all synced",
			steps: func(m *Metrics, _ *clock) {
				m.State(true, nil)
				m.Rendered("a.toml", 5, time.Millisecond, nil)
				m.Rendered("b.toml", 5, time.Millisecond, nil)
			},
			wantCode: http.StatusOK,
			want:     []string{"ok"},
		},
		{
			name: "one check keeps failing",
			steps: func(m *Metrics, _ *clock) {
				m.Rendered("a.toml", 5, time.Millisecond, nil)
				m.Rendered("b.toml", 5, time.Millisecond, checkFailed)
				m.Rendered("b.toml", 6, time.Millisecond, checkFailed)
			},
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"resource b.toml: never synced: " + checkFailed.Error()},
			notWant:  []string{"a.toml"},
		},
		{
			name: "failure after a success stays ready",
			steps: func(m *Metrics, _ *clock) {
				m.Rendered("a.toml", 5, time.Millisecond, nil)
				m.Rendered("b.toml", 5, time.Millisecond, nil)
				m.Rendered("b.toml", 6, time.Millisecond, checkFailed)
			},
			wantCode: http.StatusOK,
		},
		{
			name: "etcd down shorter than the watch timeout",
			steps: func(m *Metrics, c *clock) {
				m.Rendered("a.toml", 5, time.Millisecond, nil)
				m.Rendered("b.toml", 5, time.Millisecond, nil)
				m.State(true, nil)
				m.State(false, errors.New("connection refused"))
				c.now = c.now.Add(29 * time.Second)
			},
			wantCode: http.StatusOK,
		},
		{
			name: "etcd down longer than the watch timeout",
			steps: func(m *Metrics, c *clock) {
				m.Rendered("a.toml", 5, time.Millisecond, nil)
				m.Rendered("b.toml", 5, time.Millisecond, nil)
				m.State(true, nil)
				m.State(false, errors.New("connection refused"))
				c.now = c.now.Add(31 * time.Second)
			},
			wantCode: http.StatusServiceUnavailable,
			want:     []string{"etcd watch: unavailable for 31s: connection refused"},
		},
		{
			name: "etcd back",
			steps: func(m *Metrics, c *clock) {
				m.Rendered("a.toml", 5, time.Millisecond, nil)
				m.Rendered("b.toml", 5, time.Millisecond, nil)
				m.State(false, errors.New("connection refused"))
				c.now = c.now.Add(time.Minute)
				m.State(true, nil)
			},
			wantCode: http.StatusOK,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg, c := newMetrics(t, 30*time.Second)
			m.SetResources([]string{"a.toml", "b.toml"})
			tt.steps(m, c)
			code, body := get(t, m.Handler(reg), "/readyz")
			if code != tt.wantCode {
				t.Errorf("GET /readyz = %d, want %d; body:\n%s", code, tt.wantCode, body)
			}
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("GET /readyz body does not contain %q:\n%s", s, body)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(body, s) {
					t.Errorf("GET /readyz body contains %q:\n%s", s, body)
				}
			}
		})
	}
}

func TestMetricsEndpoint(t *testing.T) {
	m, reg, c := newMetrics(t, time.Second)
	m.SetResources([]string{"a.toml"})
	m.State(true, nil)
	m.Revision(41)
	m.Rendered("a.toml", 41, 3*time.Millisecond, nil)
	m.Checked("a.toml", 20*time.Millisecond, nil)
	m.Reloaded("a.toml", 30*time.Millisecond, errors.New("exit 1"))
	m.Pending("a.toml", true)
	m.Reconnected()
	m.Reconnected()
	m.Compacted()
	m.Failed(errors.New("no leader"))

	code, body := get(t, m.Handler(reg), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", code)
	}
	for _, want := range []string{
		`confd_renders_total{resource="a.toml",result="ok"} 1`,
		`confd_renders_total{resource="a.toml",result="error"} 0`,
		`confd_checks_total{resource="a.toml",result="ok"} 1`,
		`confd_reloads_total{resource="a.toml",result="error"} 1`,
		`confd_resource_revision{resource="a.toml"} 41`,
		`confd_resource_pending{resource="a.toml"} 1`,
		`confd_render_duration_seconds_count{resource="a.toml"} 1`,
		`confd_command_duration_seconds_count{kind="check",resource="a.toml"} 1`,
		`confd_command_duration_seconds_sum{kind="reload",resource="a.toml"} 0.03`,
		`confd_etcd_up 1`,
		`confd_last_event_revision 41`,
		`confd_watch_reconnects_total 2`,
		`confd_compactions_total 1`,
		`confd_etcd_errors_total 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("GET /metrics has no line %q", want)
		}
	}
	if want := `confd_resource_last_success_timestamp_seconds{resource="a.toml"} 1.7e+09`; !strings.Contains(body, want+"\n") {
		t.Errorf("GET /metrics has no line %q (clock at %d)", want, c.now.Unix())
	}
}

func TestSetResourcesDropsRemoved(t *testing.T) {
	m, reg, _ := newMetrics(t, time.Second)
	m.SetResources([]string{"a.toml", "b.toml"})
	m.Rendered("a.toml", 3, time.Millisecond, nil)
	m.Rendered("b.toml", 3, time.Millisecond, nil)
	m.SetResources([]string{"a.toml"})
	_, metricsBody := get(t, m.Handler(reg), "/metrics")
	if n := strings.Count(metricsBody, "\nconfd_resource_revision{"); n != 1 {
		t.Errorf("confd_resource_revision has %d series, want 1:\n%s", n, metricsBody)
	}
	if strings.Contains(metricsBody, `resource="b.toml"`) {
		t.Errorf("a series of the removed b.toml is left:\n%s", metricsBody)
	}
	if code, body := get(t, m.Handler(reg), "/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz = %d, want 200 (a.toml stays synced); body:\n%s", code, body)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	m, reg, _ := newMetrics(t, time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, m.Handler(reg)) }()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of cancel")
	}
}
