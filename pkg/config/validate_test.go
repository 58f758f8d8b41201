package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validConfig() *Config {
	c := defaults()
	c.Backend = BackendEtcd
	c.Scheme = "http"
	c.Nodes = []string{"http://127.0.0.1:2379"}
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // one line per error; none means valid
	}{
		{name: "valid", change: func(*Config) {}},
		{name: "etcd alias", change: func(c *Config) { c.Backend = "etcd" }},
		{name: "env backend without nodes", change: func(c *Config) { c.Backend = BackendEnv; c.Nodes = nil }},
		{name: "srv record without nodes", change: func(c *Config) { c.Nodes = nil; c.SRVRecord = "_etcd._tcp.example.com." }},
		{name: "ipv6 node", change: func(c *Config) { c.Nodes = []string{"https://[::1]:2379/"} }},
		{name: "wait", change: func(c *Config) { c.Wait = "2s:10s" }},
		{name: "warning is a level", change: func(c *Config) { c.LogLevel = "warning" }},
		{
			name:   "unsupported backend alone",
			change: func(c *Config) { c.Backend = "consul"; c.Interval = 0 },
			want:   []string{`backend: "consul" is not supported; supported backends: etcdv3 (or etcd), env, file`},
		},
		{
			name:   "interval",
			change: func(c *Config) { c.Interval = -1 },
			want:   []string{"interval: must be positive, got -1"},
		},
		{
			name:   "zero interval",
			change: func(c *Config) { c.Interval = 0 },
			want:   []string{"interval: must be positive, got 0"},
		},
		{
			name:   "log level and format",
			change: func(c *Config) { c.LogLevel = "loud"; c.LogFormat = "xml" },
			want: []string{
				`log-level: must be one of panic, fatal, error, warn, info, debug, trace; got "loud"`,
				`log-format: must be text or json, got "xml"`,
			},
		},
		{
			name: "timeouts",
			change: func(c *Config) {
				c.CommandTimeout = 0
				c.DialTimeout = -time.Second
				c.RequestTimeout = 0
			},
			want: []string{
				"command-timeout: must be positive, got 0s",
				"dial-timeout: must be positive, got -1s",
				"request-timeout: must be positive, got 0s",
			},
		},
		{
			name:   "wait format",
			change: func(c *Config) { c.Wait = "10s:2s" },
			want:   []string{"wait: max 2s is less than min 10s"},
		},
		{
			name:   "file backend without files",
			change: func(c *Config) { c.Backend = BackendFile },
			want:   []string{"file: the file backend needs at least one -file"},
		},
		{
			name:   "file backend with a bad filter",
			change: func(c *Config) { c.Backend, c.Files, c.Filter = BackendFile, []string{"/data"}, "[a-" },
			want:   []string{`filter: "[a-": syntax error in pattern`},
		},
		{
			name:   "no nodes",
			change: func(c *Config) { c.Nodes = nil },
			want:   []string{"node: no etcd nodes and no SRV record"},
		},
		{
			name:   "bad nodes",
			change: func(c *Config) { c.Nodes = []string{"tcp://h:1", "http://", "http://h:x", "http://h:1/v2/keys"} },
			want: []string{
				`node: "tcp://h:1": unsupported scheme "tcp", want http or https`,
				`node: "http://": no host`,
				`node: "http://h:x": invalid port ":x" after host`,
				`node: "http://h:1/v2/keys": unexpected path "/v2/keys"`,
			},
		},
		{
			name:   "scheme",
			change: func(c *Config) { c.Scheme = "tcp" },
			want:   []string{`scheme: must be http or https, got "tcp"`},
		},
		{
			name:   "client cert without key",
			change: func(c *Config) { c.ClientCert = "/c.pem" },
			want:   []string{"client-key: required with client-cert"},
		},
		{
			name:   "client key without cert",
			change: func(c *Config) { c.ClientKey = "/k.pem" },
			want:   []string{"client-cert: required with client-key"},
		},
		{
			name:   "basic auth without user",
			change: func(c *Config) { c.BasicAuth = true; c.Password = "p" },
			want:   []string{"username: required with basic-auth"},
		},
		{
			name:   "empty confdir",
			change: func(c *Config) { c.ConfDir = "" },
			want:   []string{"confdir: must not be empty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate():\n got %q\nwant %q", got, tt.want)
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("error does not match ErrUsage")
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(tt.want[0], fe.Field+": ") {
				t.Errorf("first FieldError = %+v, want field of %q", fe, tt.want[0])
			}
		})
	}
}

func TestNormaliseNodes(t *testing.T) {
	tests := []struct {
		nodes  []string
		scheme string
		want   []string
	}{
		{[]string{"192.168.1.21:4001"}, "http", []string{"http://192.168.1.21:4001"}},
		{[]string{"192.168.1.21:4001"}, "https", []string{"https://192.168.1.21:4001"}},
		{[]string{"localhost:2379"}, "http", []string{"http://localhost:2379"}},
		{[]string{"[::1]:2379"}, "http", []string{"http://[::1]:2379"}},
		{[]string{"https://a:1", "HTTP://b:1"}, "http", []string{"https://a:1", "HTTP://b:1"}},
		{[]string{"a:1,b:1", " c:1 ,", ",", ""}, "http", []string{"http://a:1", "http://b:1", "http://c:1"}},
		{nil, "http", nil},
	}
	for _, tt := range tests {
		if got := normaliseNodes(tt.nodes, tt.scheme); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("normaliseNodes(%q, %s) = %q, want %q", tt.nodes, tt.scheme, got, tt.want)
		}
	}
}

func TestParseWait(t *testing.T) {
	tests := []struct {
		in       string
		min, max time.Duration
		err      string
	}{
		{in: ""},
		{in: "0"},
		{in: "0s:0s"},
		{in: "2s:10s", min: 2 * time.Second, max: 10 * time.Second},
		{in: "5s", min: 5 * time.Second, max: 20 * time.Second},
		{in: "3", min: 3 * time.Second, max: 12 * time.Second},
		{in: "1s:1s", min: time.Second, max: time.Second},
		{in: "500ms:2", min: 500 * time.Millisecond, max: 2 * time.Second},
		{in: "10s:2s", err: "max 2s is less than min 10s"},
		{in: "0s:5s", err: "min must be positive, got 0s"},
		{in: "-1s", err: "min must be positive, got -1s"},
		{in: "soon", err: `min: want a duration such as 30s or 1m, got "soon"`},
		{in: "1s:later", err: `max: want a duration such as 30s or 1m, got "later"`},
	}
	for _, tt := range tests {
		lo, hi, err := ParseWait(tt.in)
		var got string
		if err != nil {
			got = err.Error()
		}
		if got != tt.err || lo != tt.min || hi != tt.max {
			t.Errorf("ParseWait(%q) = %s, %s, %q; want %s, %s, %q", tt.in, lo, hi, got, tt.min, tt.max, tt.err)
		}
	}
}

func TestUsage(t *testing.T) {
	var buf bytes.Buffer
	Usage(&buf)
	out := buf.String()
	for _, want := range []string{
		"Usage: confd [flags]", "CONFD_NODE",
		"-backend", "-node", "-srv-domain", "-srv-record", "-scheme", "-client-cert", "-client-key",
		"-client-ca-keys", "-client-insecure", "-basic-auth", "-username", "-password", "-confdir",
		"-config-file", "-prefix", "-onetime", "-watch", "-interval", "-wait min[:max]", "-noop",
		"-sync-only", "-keep-stage-file", "-log-level", "-log-format", "-file", "-filter",
		"-command-timeout", "-dial-timeout", "-request-timeout", "-version",
		"(default etcd)", "(default 600)", "(default 1m0s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	for _, hidden := range []string{"-verbose", "-debug", "-quiet", "-table", "-auth-token", "-secret-keyring"} {
		if strings.Contains(out, hidden+" ") || strings.Contains(out, hidden+"\n") {
			t.Errorf("usage lists hidden flag %s", hidden)
		}
	}
}

// Every option must be settable from each layer it claims, with the same
// result; this keeps the table, the file keys and the variables in step.
func TestOptionsReachEveryLayer(t *testing.T) {
	sample := map[kind]struct{ flag, toml string }{
		kindString:   {"x", `"x"`},
		kindBool:     {"true", "true"},
		kindInt:      {"7", "7"},
		kindDuration: {"7s", `"7s"`},
		kindList:     {"x", `["x"]`},
	}
	for i := range options {
		o := &options[i]
		if o.hidden() {
			continue
		}
		s := sample[o.kind]
		fromFlag := defaults()
		if err := newFlags(fromFlag, true).fs.Set(o.name, s.flag); err != nil {
			t.Fatalf("flag -%s: %v", o.name, err)
		}
		if fromFlag.equal(defaults()) {
			t.Errorf("flag -%s changes nothing", o.name)
		}
		if o.where&inEnv != 0 {
			fromEnv := defaults()
			f := newFlags(fromEnv, true)
			if err := readEnviron([]string{o.envName() + "=" + s.flag}).apply(f); err != nil {
				t.Fatalf("%s: %v", o.envName(), err)
			}
			if !fromEnv.equal(fromFlag) {
				t.Errorf("%s=%s differs from -%s %s", o.envName(), s.flag, o.name, s.flag)
			}
		}
		if o.where&inFile != 0 {
			path := filepath.Join(t.TempDir(), "confd.toml")
			key := strings.ReplaceAll(o.name, "-", "_")
			if err := os.WriteFile(path, []byte(key+" = "+s.toml+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fromFile := defaults()
			warnings, err := readFile(path, true, newFlags(fromFile, true))
			if err != nil || len(warnings) != 0 {
				t.Fatalf("key %s: %v %q", key, err, warnings)
			}
			if !fromFile.equal(fromFlag) {
				t.Errorf("key %s = %s differs from -%s %s", key, s.toml, o.name, s.flag)
			}
		}
	}
}

func (c *Config) equal(d *Config) bool { return reflect.DeepEqual(c, d) }
