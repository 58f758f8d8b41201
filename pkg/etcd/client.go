package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

const (
	// DefaultDialTimeout bounds connecting to etcd when Config.DialTimeout
	// is zero; it is the original confd's value.
	DefaultDialTimeout = 5 * time.Second
	// keepAliveTime and keepAliveTimeout make a client notice a dead
	// connection under a long-running watch.
	keepAliveTime    = 10 * time.Second
	keepAliveTimeout = 5 * time.Second
	// maxReconnectDelay caps gRPC's delay between attempts to reconnect to
	// an endpoint. Its default grows to 120 s, so after a long outage confd
	// would notice that etcd is back up to two minutes late.
	maxReconnectDelay = 5 * time.Second
)

// ErrNoEndpoints is returned when neither endpoints nor an SRV record to
// discover them are configured.
var ErrNoEndpoints = errors.New("no etcd endpoints configured")

// Config says how to reach etcd.
type Config struct {
	// Endpoints are URLs such as "http://127.0.0.1:2379" or
	// "https://etcd1:2379". All must use the same scheme. A bare
	// "host:port" is accepted and uses TLS when TLS files are set. Ignored
	// when SRVRecord or SRVDomain is set, as in the original confd.
	Endpoints []string
	// SRVRecord is the full name of the SRV record that lists the etcd
	// members, such as "_etcd-client._tcp.example.com".
	SRVRecord string
	// SRVDomain builds the record name "_<Backend>._tcp.<SRVDomain>." when
	// SRVRecord is empty.
	SRVDomain string
	// Backend is the backend name given to confd ("etcd" or "etcdv3"). It
	// only names the service in the record built from SRVDomain; empty
	// means "etcd".
	Backend string
	// Scheme ("http" or "https") is put in front of the host:port pairs
	// found in SRV records. Empty means "https" when TLS files are set and
	// "http" otherwise.
	Scheme string
	// CertFile and KeyFile are a PEM client certificate and key.
	CertFile, KeyFile string
	// CAFile holds the PEM certificates that etcd's certificate must chain
	// to; empty means the system's roots.
	CAFile string
	// Insecure skips verification of etcd's certificate.
	Insecure bool
	// Username and Password authenticate with etcd when Username is set.
	Username, Password string
	// DialTimeout bounds looking up SRV records and connecting in
	// NewClient, and then authenticating; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout is how long a caller lets one read run; callers bound
	// the contexts they pass to ReadPrefixes with it.
	RequestTimeout time.Duration
	// Resolver looks up SRV records; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

func (c Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return DefaultDialTimeout
}

func (c Config) usesSRV() bool { return c.SRVRecord != "" || c.SRVDomain != "" }

func (c Config) hasTLSFiles() bool {
	return c.CertFile != "" || c.KeyFile != "" || c.CAFile != ""
}

// NewClient returns a client for the etcd cluster that cfg describes, after
// checking that at least one endpoint answers within the dial timeout. With
// several endpoints the client balances over them and fails over when one
// goes away. The client logs nothing; log receives warnings about unsafe
// settings and one line when connected. The caller closes the client.
// Errors name the endpoints and never contain the password.
func NewClient(ctx context.Context, cfg Config, log *logrus.Logger) (*clientv3.Client, error) {
	if log == nil {
		log = logrus.New()
		log.SetOutput(io.Discard)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout())
	defer cancel()

	endpoints := cfg.Endpoints
	if cfg.usesSRV() {
		found, err := DiscoverEndpoints(ctx, cfg)
		if err != nil {
			return nil, err
		}
		endpoints = found
		log.WithFields(logrus.Fields{"record": SRVRecordName(cfg), "endpoints": redacted(endpoints)}).
			Info("discovered etcd endpoints")
	}
	if len(endpoints) == 0 {
		return nil, ErrNoEndpoints
	}
	scheme, err := checkEndpoints(endpoints)
	if err != nil {
		return nil, err
	}
	secure := scheme == "https"
	tlsCfg, err := tlsConfig(cfg, secure)
	if err != nil {
		return nil, err
	}
	if scheme == "http" && cfg.hasTLSFiles() {
		log.WithField("endpoints", redacted(endpoints)).
			Warn("tls files are set but endpoints use http; not using tls")
	}
	if cfg.Insecure {
		log.WithField("endpoints", redacted(endpoints)).
			Warn("INSECURE: not verifying the certificate of etcd")
	}
	if cfg.Username != "" && cfg.Password == "" {
		return nil, fmt.Errorf("etcd user %q has no password", cfg.Username)
	}

	ccfg := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          cfg.dialTimeout(),
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxReconnectDelay},
			MinConnectTimeout: cfg.dialTimeout(),
		})},
		TLS:    tlsCfg,
		Logger: zap.NewNop(),
	}
	// The client connects lazily; make an unreachable or misconfigured etcd
	// fail here, with the reason of each endpoint. The probe goes without
	// credentials, because a client with credentials authenticates while it
	// is made and would only report a timeout.
	c, err := clientv3.New(ccfg)
	if err != nil {
		return nil, connectError(endpoints, cfg.Username, err)
	}
	if err := probe(ctx, c, endpoints); err != nil {
		c.Close()
		if secure && cfg.CertFile == "" {
			err = fmt.Errorf("%w (no client certificate given; etcd may require one)", err)
		}
		return nil, connectError(nil, cfg.Username, err)
	}
	if cfg.Username != "" {
		c.Close()
		ccfg.Username, ccfg.Password = cfg.Username, cfg.Password
		if c, err = clientv3.New(ccfg); err != nil {
			return nil, connectError(endpoints, cfg.Username, err)
		}
	}
	fields := logrus.Fields{"endpoints": redacted(endpoints)}
	if cfg.Username != "" {
		fields["user"] = cfg.Username
	}
	log.WithFields(fields).Info("connected to etcd")
	return c, nil
}

// connectError names what NewClient tried to reach; endpoints may be nil
// when err names them already.
func connectError(endpoints []string, user string, err error) error {
	what := "connect to etcd"
	if len(endpoints) > 0 {
		what += " " + redacted(endpoints)
	}
	if user != "" {
		what += fmt.Sprintf(" as user %q", user)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// probe asks the endpoints for the member list. It returns nil as soon as
// one answers, and otherwise the reason of each endpoint. The calls fail
// fast: an endpoint that refuses the connection or the TLS handshake
// reports why at once instead of waiting for the deadline.
//
// A single endpoint is asked on the client's own connection, which the
// reads that follow then use without a second handshake. Several are asked
// at once, each on a connection of its own, so that each has its reason.
func probe(ctx context.Context, c *clientv3.Client, endpoints []string) error {
	if len(endpoints) == 1 {
		return askMembers(ctx, c.ActiveConnection(), endpoints[0])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(endpointErrors, len(endpoints))
	done := make(chan int, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = probeEndpoint(ctx, c, ep)
			done <- i
		}()
	}
	defer wg.Wait()
	for range endpoints {
		if i := <-done; errs[i] == nil {
			return nil
		}
	}
	return errs
}

func probeEndpoint(ctx context.Context, c *clientv3.Client, ep string) error {
	conn, err := c.Dial(ep)
	if err != nil {
		return fmt.Errorf("%s: %w", redacted([]string{ep}), err)
	}
	defer conn.Close()
	return askMembers(ctx, conn, ep)
}

// askMembers asks for the member list on conn, which reaches ep, without
// waiting for the connection to be ready.
func askMembers(ctx context.Context, conn *grpc.ClientConn, ep string) error {
	_, err := pb.NewClusterClient(conn).MemberList(ctx, &pb.MemberListRequest{})
	err = rpctypes.Error(err)
	switch {
	case err == nil, errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrPermissionDenied):
		// An answer that asks for credentials comes from a reachable
		// etcd; the client made with credentials checks them.
		return nil
	default:
		return fmt.Errorf("%s: %w", redacted([]string{ep}), err)
	}
}

// endpointErrors are the reasons why each endpoint failed, on one line.
type endpointErrors []error

func (e endpointErrors) Error() string {
	msgs := make([]string, 0, len(e))
	for _, err := range e {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	return strings.Join(msgs, "; ")
}

func (e endpointErrors) Unwrap() []error { return e }

// checkEndpoints rejects endpoints the client cannot use and returns their
// common scheme: "http", "https" or "" for bare host:port pairs. The etcd
// client takes the scheme of the first endpoint for all of them, so mixed
// schemes are an error.
func checkEndpoints(endpoints []string) (string, error) {
	common := ""
	for i, ep := range endpoints {
		scheme, err := endpointScheme(ep)
		if err != nil {
			return "", err
		}
		if i > 0 && scheme != common {
			return "", fmt.Errorf("etcd endpoints %s mix schemes", redacted(endpoints))
		}
		common = scheme
	}
	return common, nil
}

// endpointScheme returns "http", "https" or "" for a bare host:port.
func endpointScheme(ep string) (string, error) {
	if !strings.Contains(ep, "://") {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return "", fmt.Errorf("etcd endpoint %q: %w", ep, err)
		}
		return "", nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", fmt.Errorf("etcd endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("etcd endpoint %s: scheme %q is not http or https", u.Redacted(), u.Scheme)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("etcd endpoint %s: want %s://host:port", u.Redacted(), u.Scheme)
	}
	return u.Scheme, nil
}

// redacted lists endpoints for messages, without any user:password part.
func redacted(endpoints []string) string {
	out := make([]string, len(endpoints))
	for i, ep := range endpoints {
		out[i] = ep
		if u, err := url.Parse(ep); err == nil && u.User != nil {
			u.User = nil
			out[i] = u.String()
		}
	}
	return strings.Join(out, ",")
}

// tlsConfig builds the client's TLS settings, or nil for plain
// connections.
func tlsConfig(cfg Config, secure bool) (*tls.Config, error) {
	if !secure && !cfg.hasTLSFiles() && !cfg.Insecure {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.Insecure}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("etcd client certificate needs both a cert file and a key file")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load etcd client certificate %s: %w", cfg.CertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read etcd ca file %s: no pem certificates", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
