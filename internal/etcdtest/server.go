package etcdtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

const (
	// readyTimeout bounds how long a start waits for the member to serve.
	readyTimeout = 30 * time.Second
	// rebindTimeout bounds how long a restart waits for its old ports.
	rebindTimeout = 10 * time.Second
	// portAttempts is how often a start picks fresh ports when one of them
	// was taken between picking and binding.
	portAttempts = 5
	// clientDialTimeout bounds connecting and authenticating in Client.
	clientDialTimeout = 5 * time.Second
	// Raft timing fast enough for quick elections in tests, slow enough for
	// a loaded machine running with the race detector.
	tickMs     = 25
	electionMs = 250
	// bcryptMinCost is the cheapest password hashing etcd accepts, so that
	// tests adding users and authenticating stay fast.
	bcryptMinCost = 4
)

// TLS names the PEM files a member uses on its client port.
type TLS struct {
	// CertFile and KeyFile are the certificate the member presents.
	CertFile, KeyFile string
	// CAFile is the authority that signed the certificates of clients. It
	// is also what Client trusts for the member's certificate.
	CAFile string
	// ClientCertAuth makes the member require a client certificate signed
	// by CAFile.
	ClientCertAuth bool
	// ClientCertFile and ClientKeyFile are what Client presents; when
	// empty, Client presents CertFile and KeyFile.
	ClientCertFile, ClientKeyFile string
}

// Option changes how members are started.
type Option func(*options)

type options struct {
	tls          *TLS
	authTokenTTL uint
}

// WithTLS serves the client port with TLS: the member presents certFile and
// keyFile, and with clientCertAuth requires client certificates signed by
// caFile. Client trusts caFile and presents the member's own certificate, so
// issue it for both server and client use, or add WithClientCert.
func WithTLS(certFile, keyFile, caFile string, clientCertAuth bool) Option {
	return func(o *options) {
		if o.tls == nil {
			o.tls = &TLS{}
		}
		o.tls.CertFile, o.tls.KeyFile, o.tls.CAFile = certFile, keyFile, caFile
		o.tls.ClientCertAuth = clientCertAuth
	}
}

// WithClientCert sets the certificate Client presents to a TLS member.
func WithClientCert(certFile, keyFile string) Option {
	return func(o *options) {
		if o.tls == nil {
			o.tls = &TLS{}
		}
		o.tls.ClientCertFile, o.tls.ClientKeyFile = certFile, keyFile
	}
}

// Server is one etcd member running inside the test process.
type Server struct {
	name           string
	dir            string
	clientURL      url.URL
	peerURL        url.URL
	initialCluster string
	clusterToken   string
	tls            *TLS
	authTokenTTL   uint

	mu   sync.Mutex
	etcd *embed.Etcd
}

// Start runs a single-member etcd cluster on 127.0.0.1 and waits until it
// serves clients. It is stopped when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return startMembers(t, 1, opts)[0]
}

// startMembers starts n members that form one cluster in the test's
// temporary directories and stops them when the test ends.
func startMembers(t testing.TB, n int, opts []Option) []*Server {
	t.Helper()
	members, err := launchMembers(context.Background(), n, func() string { return t.TempDir() }, opts)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	for _, m := range members {
		t.Cleanup(m.Stop)
	}
	return members
}

// launchMembers starts n members that form one cluster and waits until all
// serve clients. It picks fresh ports, and asks newDir for fresh data
// directories, again when a port was taken before etcd bound it. It gives up
// when ctx ends. On error no member is left running.
func launchMembers(ctx context.Context, n int, newDir func() string, opts []Option) ([]*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var lastErr error
	for attempt := 0; attempt < portAttempts; attempt++ {
		if err := context.Cause(ctx); err != nil {
			return nil, err
		}
		members, err := newMembers(n, attempt, newDir, o)
		if err != nil {
			return nil, err
		}
		err = startAll(ctx, members)
		if err == nil {
			return members, nil
		}
		for _, m := range members {
			m.Stop()
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no free ports after %d attempts: %w", portAttempts, lastErr)
}

// newMembers describes n members on fresh ports without starting them.
func newMembers(n, attempt int, newDir func() string, o options) ([]*Server, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	clientScheme := "http"
	if o.tls != nil && o.tls.CertFile != "" {
		clientScheme = "https"
	}
	members := make([]*Server, n)
	initial := ""
	for i := range members {
		m := &Server{
			name:         "m" + strconv.Itoa(i),
			dir:          newDir(),
			clientURL:    url.URL{Scheme: clientScheme, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2*i]))},
			peerURL:      url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2*i+1]))},
			clusterToken: fmt.Sprintf("etcdtest-%d-%d", ports[0], attempt),
			tls:          o.tls,
			authTokenTTL: o.authTokenTTL,
		}
		if initial != "" {
			initial += ","
		}
		initial += m.name + "=" + m.peerURL.String()
		members[i] = m
	}
	for _, m := range members {
		m.initialCluster = initial
	}
	return members, nil
}

// startAll launches every member first, because members of a new cluster
// become ready only once a quorum of them runs, then waits for all.
func startAll(ctx context.Context, members []*Server) error {
	for _, m := range members {
		if err := m.launch(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(readyTimeout)
	for _, m := range members {
		if err := m.waitReady(ctx, deadline); err != nil {
			return err
		}
	}
	return nil
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago. etcd binds its own listeners from URLs, so a port can be taken
// in between; callers retry on EADDRINUSE.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// config builds a fresh embed configuration; embed keeps state in it, so a
// restart must not reuse the one of an earlier start.
func (s *Server) config() *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = s.name
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = s.initialCluster
	cfg.InitialClusterToken = s.clusterToken
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs = tickMs
	cfg.ElectionMs = electionMs
	cfg.BcryptCost = bcryptMinCost
	if s.authTokenTTL > 0 {
		cfg.AuthTokenTTL = s.authTokenTTL
	}
	if s.tls != nil && s.tls.CertFile != "" {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       s.tls.CertFile,
			KeyFile:        s.tls.KeyFile,
			TrustedCAFile:  s.tls.CAFile,
			ClientCertAuth: s.tls.ClientCertAuth,
		}
	}
	return cfg
}

// launch starts the member without waiting for it to serve.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd != nil {
		return fmt.Errorf("start member %s: already running", s.name)
	}
	e, err := embed.StartEtcd(s.config())
	if err != nil {
		return fmt.Errorf("start member %s: %w", s.name, err)
	}
	s.etcd = e
	return nil
}

// waitReady waits until the member serves clients, fails, the deadline
// passes or ctx ends.
func (s *Server) waitReady(ctx context.Context, deadline time.Time) error {
	s.mu.Lock()
	e := s.etcd
	s.mu.Unlock()
	if e == nil {
		return fmt.Errorf("wait for member %s: not running", s.name)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("wait for member %s: %w", s.name, err)
	case <-timer.C:
		return fmt.Errorf("wait for member %s: not ready after %v", s.name, readyTimeout)
	case <-ctx.Done():
		return fmt.Errorf("wait for member %s: %w", s.name, context.Cause(ctx))
	}
}

// Name is the member's name in its cluster.
func (s *Server) Name() string { return s.name }

// Endpoints returns the client URL of the member, such as
// "http://127.0.0.1:41234".
func (s *Server) Endpoints() []string { return []string{s.clientURL.String()} }

// DataDir is the member's data directory.
func (s *Server) DataDir() string { return s.dir }

// TLS returns the TLS files of the member, or nil when it serves plain HTTP.
func (s *Server) TLS() *TLS {
	if s.tls == nil {
		return nil
	}
	c := *s.tls
	return &c
}

// Client returns a client connected to the member, closed when the test
// ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, s.Endpoints(), s.tls)
}

// Stop stops the member and keeps its data. Stopping a stopped member does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd == nil {
		return
	}
	s.etcd.Close()
	s.etcd = nil
}

// Restart starts a stopped member again on the same data directory and the
// same addresses, so clients that knew it reconnect. It stops the member
// first if it runs.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	deadline := time.Now().Add(rebindTimeout)
	for {
		err := s.launch()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("etcdtest: restart: %v", err)
		}
		// The old port is still held, most often by a lingering socket
		// of another test; poll until it frees up or the deadline passes.
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.waitReady(context.Background(), time.Now().Add(readyTimeout)); err != nil {
		s.Stop()
		t.Fatalf("etcdtest: restart: %v", err)
	}
}

func newClient(t testing.TB, endpoints []string, tlsFiles *TLS) *clientv3.Client {
	t.Helper()
	c, err := dial(endpoints, tlsFiles)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dial connects a quiet client to endpoints, with TLS when tlsFiles names
// a certificate.
func dial(endpoints []string, tlsFiles *TLS) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: clientDialTimeout,
		Logger:      zap.NewNop(),
	}
	if tlsFiles != nil && tlsFiles.CertFile != "" {
		tc, err := clientTLS(tlsFiles)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %v: %w", endpoints, err)
	}
	return c, nil
}

func clientTLS(f *TLS) (*tls.Config, error) {
	info := transport.TLSInfo{
		CertFile:      f.CertFile,
		KeyFile:       f.KeyFile,
		TrustedCAFile: f.CAFile,
	}
	if f.ClientCertFile != "" {
		info.CertFile, info.KeyFile = f.ClientCertFile, f.ClientKeyFile
	}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("client tls config: %w", err)
	}
	return tc, nil
}
