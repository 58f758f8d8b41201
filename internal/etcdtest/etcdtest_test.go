package etcdtest

import (
	"context"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, c *clientv3.Client, key, value string) {
	t.Helper()
	if _, err := c.Put(ctxTimeout(t, 10*time.Second), key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func mustGet(t *testing.T, c *clientv3.Client, key string) string {
	t.Helper()
	resp, err := c.Get(ctxTimeout(t, 10*time.Second), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("get %s: got %d keys, want 1", key, len(resp.Kvs))
	}
	return string(resp.Kvs[0].Value)
}

func checkLoopbackURL(t *testing.T, ep, scheme string) {
	t.Helper()
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatalf("endpoint %q: %v", ep, err)
	}
	if u.Scheme != scheme || u.Hostname() != "127.0.0.1" || u.Port() == "" || u.Port() == "0" {
		t.Errorf("endpoint = %q, want %s://127.0.0.1:<port>", ep, scheme)
	}
}

func TestStartServesClients(t *testing.T) {
	s := Start(t)
	eps := s.Endpoints()
	if len(eps) != 1 {
		t.Fatalf("endpoints = %v, want one", eps)
	}
	checkLoopbackURL(t, eps[0], "http")
	c := s.Client(t)
	mustPut(t, c, "/a", "1")
	if got := mustGet(t, c, "/a"); got != "1" {
		t.Errorf("get /a = %q, want %q", got, "1")
	}
}

func TestTwoServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Endpoints()[0] == b.Endpoints()[0] {
		t.Fatalf("both servers on %s", a.Endpoints()[0])
	}
	mustPut(t, a.Client(t), "/only-a", "x")
	resp, err := b.Client(t).Get(ctxTimeout(t, 10*time.Second), "/only-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("second server has /only-a")
	}
}

func TestRestartKeepsDataAndAddress(t *testing.T) {
	s := Start(t)
	before := s.Endpoints()[0]
	c := s.Client(t)
	mustPut(t, c, "/kept", "yes")

	s.Stop()
	s.Stop() // a second stop does nothing
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.Get(ctx, "/kept")
	cancel()
	if err == nil {
		t.Fatalf("get from a stopped server succeeded")
	}

	s.Restart(t)
	if after := s.Endpoints()[0]; after != before {
		t.Errorf("endpoint after restart = %s, want %s", after, before)
	}
	// The client made before the stop reconnects on its own.
	if got := mustGet(t, c, "/kept"); got != "yes" {
		t.Errorf("get /kept after restart = %q, want %q", got, "yes")
	}
}

func TestTLSWithClientCertificates(t *testing.T) {
	certs := NewCertificates(t)
	s := Start(t,
		WithTLS(certs.ServerCertFile, certs.ServerKeyFile, certs.CAFile, true),
		WithClientCert(certs.ClientCertFile, certs.ClientKeyFile))
	checkLoopbackURL(t, s.Endpoints()[0], "https")
	if s.TLS() == nil || !s.TLS().ClientCertAuth {
		t.Fatalf("TLS() = %+v, want client cert auth", s.TLS())
	}
	c := s.Client(t)
	mustPut(t, c, "/tls", "on")
	if got := mustGet(t, c, "/tls"); got != "on" {
		t.Errorf("get /tls = %q, want %q", got, "on")
	}
}

func TestClusterReplicates(t *testing.T) {
	cl := StartCluster(t, 3)
	eps := cl.Endpoints()
	if len(eps) != 3 {
		t.Fatalf("endpoints = %v, want 3", eps)
	}
	for _, ep := range eps {
		checkLoopbackURL(t, ep, "http")
	}
	mustPut(t, cl.Members[0].Client(t), "/replicated", "v")
	// A linearizable read on another member sees the write.
	if got := mustGet(t, cl.Members[2].Client(t), "/replicated"); got != "v" {
		t.Errorf("get on member 2 = %q, want %q", got, "v")
	}
	// With one member down the other two keep a quorum.
	cl.Members[1].Stop()
	c := cl.Client(t)
	mustPut(t, c, "/after-stop", "w")
	cl.Members[1].Restart(t)
	if got := mustGet(t, cl.Members[1].Client(t), "/after-stop"); got != "w" {
		t.Errorf("get on restarted member = %q, want %q", got, "w")
	}
}

// TestQuiet checks that starting, using and stopping a server writes
// nothing to the process's standard output and error.
func TestQuiet(t *testing.T) {
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outW, errW
	captured := make(chan string, 2)
	for _, r := range []*os.File{outR, errR} {
		go func() {
			b, _ := io.ReadAll(r)
			captured <- string(b)
		}()
	}

	func() {
		defer func() { os.Stdout, os.Stderr = stdout, stderr }()
		s := Start(t)
		mustPut(t, s.Client(t), "/q", "1")
		s.Stop()
		s.Restart(t)
		s.Stop()
	}()
	outW.Close()
	errW.Close()
	var all []string
	for range 2 {
		select {
		case s := <-captured:
			all = append(all, s)
		case <-time.After(10 * time.Second):
			t.Fatal("reading captured output timed out")
		}
	}
	if out := strings.Join(all, ""); out != "" {
		t.Errorf("server wrote to stdout/stderr:\n%s", out)
	}
}

// TestNoGoroutinesLeft checks that a stopped server and its closed client
// leave no goroutines behind.
func TestNoGoroutinesLeft(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	t.Run("run", func(t *testing.T) {
		s := Start(t)
		mustPut(t, s.Client(t), "/g", "1")
	})
	goleak.VerifyNone(t, opts)
}
