package etcd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/etcdtest"
	"github.com/etcdconfd/confd/internal/syncio"
	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func testLogger() (*logrus.Logger, *syncio.Buffer) {
	buf := &syncio.Buffer{}
	log := logrus.New()
	log.SetOutput(buf)
	log.SetLevel(logrus.DebugLevel)
	return log, buf
}

// deadEndpoint returns the URL of a 127.0.0.1 port nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + l.Addr().String()
	l.Close()
	return ep
}

func newTestClient(t *testing.T, cfg Config) (*clientv3.Client, *syncio.Buffer, error) {
	t.Helper()
	log, buf := testLogger()
	c, err := NewClient(testContext(t, 30*time.Second), cfg, log)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, buf, err
}

// checkRead reads /app through c and compares with want.
func checkRead(t *testing.T, c clientv3.KV, want map[string]string) {
	t.Helper()
	snap, err := ReadPrefixes(testContext(t, 10*time.Second), c, []string{"/app"}, 0)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got := snapshotMap(snap); !reflect.DeepEqual(got, want) {
		t.Errorf("read /app = %v, want %v", got, want)
	}
}

func TestNewClientEndpoints(t *testing.T) {
	s := etcdtest.Start(t)
	put(t, s.Client(t), map[string]string{"/app/a": "1"})
	live := s.Endpoints()[0]
	dead := deadEndpoint(t)

	for _, tc := range []struct {
		name      string
		endpoints []string
	}{
		{name: "one endpoint", endpoints: []string{live}},
		{name: "first endpoint dead", endpoints: []string{dead, live}},
		{name: "last endpoint dead", endpoints: []string{live, dead}},
		{name: "bare host and port", endpoints: []string{strings.TrimPrefix(live, "http://")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, buf, err := newTestClient(t, Config{Endpoints: tc.endpoints, DialTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			checkRead(t, c, map[string]string{"/app/a": "1"})
			if !strings.Contains(buf.String(), "connected to etcd") {
				t.Errorf("log has no connect line:\n%s", buf)
			}
		})
	}
}

func TestNewClientAllEndpointsDead(t *testing.T) {
	const (
		dialTimeout = 2 * time.Second
		password    = "dead-secret-51e7"
	)
	for _, user := range []string{"", "confd"} {
		t.Run("user "+user, func(t *testing.T) {
			dead1, dead2 := deadEndpoint(t), deadEndpoint(t)
			cfg := Config{Endpoints: []string{dead1, dead2}, DialTimeout: dialTimeout}
			if user != "" {
				cfg.Username, cfg.Password = user, password
			}
			start := time.Now()
			c, _, err := newTestClient(t, cfg)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("connected to dead endpoints: %v", c.Endpoints())
			}
			if c != nil {
				t.Errorf("client returned with error %v", err)
			}
			if took > dialTimeout+2*time.Second {
				t.Errorf("failing took %v with a dial timeout of %v", took, dialTimeout)
			}
			for _, want := range []string{dead1, dead2, "connection refused"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestNewClientReconnectsAfterRestart(t *testing.T) {
	s := etcdtest.Start(t)
	put(t, s.Client(t), map[string]string{"/app/a": "1"})
	c, _, err := newTestClient(t, Config{Endpoints: s.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = ReadPrefixes(ctx, c, []string{"/app"}, 0)
	cancel()
	if err == nil {
		t.Fatal("read from a stopped etcd succeeded")
	}
	s.Restart(t)
	checkRead(t, c, map[string]string{"/app/a": "1"})
}

func TestNewClientClusterFailover(t *testing.T) {
	cl := etcdtest.StartCluster(t, 3)
	put(t, cl.Client(t), map[string]string{"/app/a": "1"})
	c, _, err := newTestClient(t, Config{Endpoints: cl.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	checkRead(t, c, map[string]string{"/app/a": "1"})
	cl.Members[0].Stop()
	checkRead(t, c, map[string]string{"/app/a": "1"})
}

func TestNewClientTLS(t *testing.T) {
	certs := etcdtest.NewCertificates(t)
	other := etcdtest.NewCertificates(t)
	s := etcdtest.Start(t,
		etcdtest.WithTLS(certs.ServerCertFile, certs.ServerKeyFile, certs.CAFile, true),
		etcdtest.WithClientCert(certs.ClientCertFile, certs.ClientKeyFile))
	put(t, s.Client(t), map[string]string{"/app/a": "tls"})
	secure := s.Endpoints()[0]
	plain := "http://" + strings.TrimPrefix(secure, "https://")

	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // empty: connects
		wantLog string
	}{
		{
			name: "client certificate",
			cfg:  Config{Endpoints: []string{secure}, CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile},
		},
		{
			name:    "insecure without ca",
			cfg:     Config{Endpoints: []string{secure}, Insecure: true, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile},
			wantLog: "INSECURE",
		},
		{
			name:    "wrong ca",
			cfg:     Config{Endpoints: []string{secure}, CAFile: other.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile},
			wantErr: "certificate signed by unknown authority",
		},
		{
			name:    "no client certificate",
			cfg:     Config{Endpoints: []string{secure}, CAFile: certs.CAFile},
			wantErr: "no client certificate given",
		},
		{
			name:    "client certificate of another ca",
			cfg:     Config{Endpoints: []string{secure}, CAFile: certs.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile},
			wantErr: secure,
		},
		{
			name:    "http to a tls server",
			cfg:     Config{Endpoints: []string{plain}, CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile},
			wantErr: plain,
			wantLog: "endpoints use http",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DialTimeout = 3 * time.Second
			start := time.Now()
			c, buf, err := newTestClient(t, tc.cfg)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v with a dial timeout of %v", took, tc.cfg.DialTimeout)
			}
			if !strings.Contains(buf.String(), tc.wantLog) {
				t.Errorf("log does not contain %q:\n%s", tc.wantLog, buf)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkRead(t, c, map[string]string{"/app/a": "tls"})
				return
			}
			if err == nil {
				t.Fatalf("connected, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewClientAuth(t *testing.T) {
	const (
		password      = "confd-secret-4c2a"
		wrongPassword = "wrong-secret-93be"
	)
	s := etcdtest.Start(t)
	root := s.Client(t)
	put(t, root, map[string]string{"/app": "root key", "/app/a": "1", "/app/b/c": "2", "/other/x": "x"})
	etcdtest.EnableAuth(t, root, "confd", password, "/app/")

	t.Run("read only role", func(t *testing.T) {
		c, buf, err := newTestClient(t, Config{Endpoints: s.Endpoints(), Username: "confd", Password: password})
		if err != nil {
			t.Fatal(err)
		}
		// The role covers the keys below /app/ but not /app itself, which
		// therefore counts as absent.
		checkRead(t, c, map[string]string{"/app/a": "1", "/app/b/c": "2"})
		_, err = ReadPrefixes(testContext(t, 10*time.Second), c, []string{"/other"}, 0)
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("read outside the role: error = %v, want permission denied", err)
		}
		if strings.Contains(buf.String(), password) {
			t.Errorf("log contains the password:\n%s", buf)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		start := time.Now()
		c, buf, err := newTestClient(t, Config{Endpoints: s.Endpoints(), Username: "confd", Password: wrongPassword, DialTimeout: 3 * time.Second})
		if err == nil {
			c.Close()
			t.Fatal("connected with a wrong password")
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("failing took %v", took)
		}
		if !errors.Is(err, rpctypes.ErrAuthFailed) {
			t.Errorf("error = %v, want authentication failed", err)
		}
		for _, secret := range []string{wrongPassword, password} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains a password", err)
			}
			if strings.Contains(buf.String(), secret) {
				t.Errorf("log contains a password:\n%s", buf)
			}
		}
		for _, want := range []string{`"confd"`, s.Endpoints()[0]} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %s", err, want)
			}
		}
	})

	t.Run("user without password", func(t *testing.T) {
		_, _, err := newTestClient(t, Config{Endpoints: s.Endpoints(), Username: "confd"})
		if err == nil || !strings.Contains(err.Error(), "no password") {
			t.Errorf("error = %v, want one about the missing password", err)
		}
	})
}

func TestNewClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	certs := etcdtest.NewCertificates(t)
	ep := "http://127.0.0.1:2379"

	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		is      error
	}{
		{name: "no endpoints", cfg: Config{}, is: ErrNoEndpoints},
		{name: "mixed schemes", cfg: Config{Endpoints: []string{ep, "https://127.0.0.1:2380"}}, wantErr: "mix schemes"},
		{name: "bare and http", cfg: Config{Endpoints: []string{ep, "127.0.0.1:2380"}}, wantErr: "mix schemes"},
		{name: "unknown scheme", cfg: Config{Endpoints: []string{"ftp://127.0.0.1:2379"}}, wantErr: `scheme "ftp"`},
		{name: "path in endpoint", cfg: Config{Endpoints: []string{ep + "/v2/keys"}}, wantErr: "want http://host:port"},
		{name: "no port", cfg: Config{Endpoints: []string{"127.0.0.1"}}, wantErr: "missing port"},
		{name: "password in endpoint not shown", cfg: Config{Endpoints: []string{"ftp://u:hidden-pw@127.0.0.1:1"}}, wantErr: "ftp://u:xxxxx@127.0.0.1:1"},
		{name: "cert without key", cfg: Config{Endpoints: []string{ep}, CertFile: certs.ClientCertFile}, wantErr: "both a cert file and a key file"},
		{name: "missing cert file", cfg: Config{Endpoints: []string{ep}, CertFile: filepath.Join(dir, "none.pem"), KeyFile: certs.ClientKeyFile}, wantErr: "none.pem", is: os.ErrNotExist},
		{name: "missing ca file", cfg: Config{Endpoints: []string{ep}, CAFile: filepath.Join(dir, "ca.pem")}, wantErr: "ca.pem", is: os.ErrNotExist},
		{name: "ca file without certificates", cfg: Config{Endpoints: []string{ep}, CAFile: notPEM}, wantErr: "no pem certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := newTestClient(t, tc.cfg)
			if err == nil {
				t.Fatalf("connected to %v", c.Endpoints())
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hidden-pw") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}
