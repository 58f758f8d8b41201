package etcd

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/etcdtest"
	"golang.org/x/net/dns/dnsmessage"
)

type srvAnswer struct {
	target           string
	port             uint16
	priority, weight uint16
}

// dnsServer answers SRV queries from a fixed table on 127.0.0.1, over UDP
// and TCP, and NXDOMAIN for every other name.
type dnsServer struct {
	records map[string][]srvAnswer // by lower-case name with trailing dot
	udp     net.PacketConn
	tcp     net.Listener
	wg      sync.WaitGroup

	mu      sync.Mutex
	queries []string
}

func startDNS(t *testing.T, records map[string][]srvAnswer) *dnsServer {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		udp.Close()
		t.Fatal(err)
	}
	s := &dnsServer{records: records, udp: udp, tcp: tcp}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	t.Cleanup(func() {
		udp.Close()
		tcp.Close()
		s.wg.Wait()
	})
	return s
}

// resolver sends every query of the Go resolver to s, whatever name
// server the system is configured with.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			if strings.HasPrefix(network, "tcp") {
				return d.DialContext(ctx, "tcp", s.tcp.Addr().String())
			}
			return d.DialContext(ctx, "udp", s.udp.LocalAddr().String())
		},
	}
}

func (s *dnsServer) asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func (s *dnsServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, addr, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := s.answer(buf[:n]); ok {
			s.udp.WriteTo(resp, addr)
		}
	}
}

func (s *dnsServer) serveTCP() {
	defer s.wg.Done()
	for {
		conn, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			for {
				var size [2]byte
				if _, err := io.ReadFull(conn, size[:]); err != nil {
					return
				}
				query := make([]byte, binary.BigEndian.Uint16(size[:]))
				if _, err := io.ReadFull(conn, query); err != nil {
					return
				}
				resp, ok := s.answer(query)
				if !ok {
					return
				}
				framed := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				if _, err := conn.Write(append(framed, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

func (s *dnsServer) answer(query []byte) ([]byte, bool) {
	var m dnsmessage.Message
	if err := m.Unpack(query); err != nil || len(m.Questions) != 1 {
		return nil, false
	}
	q := m.Questions[0]
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	s.queries = append(s.queries, name)
	s.mu.Unlock()

	resp := dnsmessage.Message{
		Header: dnsmessage.Header{
			ID: m.ID, Response: true, Authoritative: true,
			RecursionDesired: m.RecursionDesired, RecursionAvailable: true,
		},
		Questions: m.Questions,
	}
	answers, found := s.records[name]
	switch {
	case !found:
		resp.RCode = dnsmessage.RCodeNameError
	case q.Type == dnsmessage.TypeSRV:
		for _, a := range answers {
			resp.Answers = append(resp.Answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET, TTL: 60},
				Body: &dnsmessage.SRVResource{
					Priority: a.priority, Weight: a.weight, Port: a.port,
					Target: dnsmessage.MustNewName(a.target),
				},
			})
		}
	}
	b, err := resp.Pack()
	return b, err == nil
}

func TestSRVRecordName(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{cfg: Config{}, want: ""},
		{cfg: Config{SRVRecord: "_etcd-client._tcp.example.com"}, want: "_etcd-client._tcp.example.com"},
		{cfg: Config{SRVRecord: "_etcd-client._tcp.example.com.", SRVDomain: "example.org"}, want: "_etcd-client._tcp.example.com."},
		{cfg: Config{SRVDomain: "example.com"}, want: "_etcd._tcp.example.com."},
		{cfg: Config{SRVDomain: "example.com.", Backend: "etcd"}, want: "_etcd._tcp.example.com."},
		{cfg: Config{SRVDomain: "example.com", Backend: "etcdv3"}, want: "_etcdv3._tcp.example.com."},
	} {
		if got := SRVRecordName(tc.cfg); got != tc.want {
			t.Errorf("SRVRecordName(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

func TestDiscoverEndpoints(t *testing.T) {
	dns := startDNS(t, map[string][]srvAnswer{
		"_etcd._tcp.example.com.": {
			{target: "etcd2.example.com.", port: 2380, priority: 20, weight: 10},
			{target: "localhost.", port: 2379, priority: 10, weight: 10},
		},
		"_etcdv3._tcp.example.com.":      {{target: "localhost.", port: 4001, priority: 1, weight: 1}},
		"_etcd-client._tcp.example.org.": {{target: "node1.example.org.", port: 2379, priority: 1, weight: 1}},
	})

	for _, tc := range []struct {
		name    string
		cfg     Config
		want    []string
		wantErr string
		asked   string
	}{
		{
			name:  "domain, ordered by priority",
			cfg:   Config{SRVDomain: "example.com"},
			want:  []string{"http://localhost:2379", "http://etcd2.example.com:2380"},
			asked: "_etcd._tcp.example.com.",
		},
		{
			name:  "scheme https",
			cfg:   Config{SRVDomain: "example.com", Scheme: "https"},
			want:  []string{"https://localhost:2379", "https://etcd2.example.com:2380"},
			asked: "_etcd._tcp.example.com.",
		},
		{
			name:  "tls files make https the default",
			cfg:   Config{SRVDomain: "example.com", CAFile: "ca.pem"},
			want:  []string{"https://localhost:2379", "https://etcd2.example.com:2380"},
			asked: "_etcd._tcp.example.com.",
		},
		{
			name:  "explicit http with tls files",
			cfg:   Config{SRVDomain: "example.com", Scheme: "http", CAFile: "ca.pem"},
			want:  []string{"http://localhost:2379", "http://etcd2.example.com:2380"},
			asked: "_etcd._tcp.example.com.",
		},
		{
			name:  "backend names the service",
			cfg:   Config{SRVDomain: "example.com", Backend: "etcdv3"},
			want:  []string{"http://localhost:4001"},
			asked: "_etcdv3._tcp.example.com.",
		},
		{
			name:  "full record name",
			cfg:   Config{SRVRecord: "_etcd-client._tcp.example.org"},
			want:  []string{"http://node1.example.org:2379"},
			asked: "_etcd-client._tcp.example.org.",
		},
		{
			name:  "record wins over domain",
			cfg:   Config{SRVRecord: "_etcd-client._tcp.example.org.", SRVDomain: "example.com"},
			want:  []string{"http://node1.example.org:2379"},
			asked: "_etcd-client._tcp.example.org.",
		},
		{
			name:    "unknown name",
			cfg:     Config{SRVDomain: "missing.example"},
			wantErr: "_etcd._tcp.missing.example.",
			asked:   "_etcd._tcp.missing.example.",
		},
		{
			name:    "nothing to look up",
			cfg:     Config{},
			wantErr: "no srv record or srv domain",
		},
		{
			name:    "bad scheme",
			cfg:     Config{SRVDomain: "example.com", Scheme: "ftp"},
			wantErr: `scheme "ftp"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(dns.asked())
			tc.cfg.Resolver = dns.resolver()
			got, err := DiscoverEndpoints(testContext(t, 10*time.Second), tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("endpoints = %q, want %q", got, tc.want)
			}
			if tc.asked != "" {
				asked := dns.asked()[before:]
				if len(asked) == 0 || asked[0] != tc.asked {
					t.Errorf("asked for %q, want %q first", asked, tc.asked)
				}
			}
		})
	}
}

func TestDiscoverEndpointsNotFound(t *testing.T) {
	dns := startDNS(t, nil)
	_, err := DiscoverEndpoints(testContext(t, 10*time.Second), Config{SRVDomain: "missing.example", Resolver: dns.resolver()})
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("error = %v, want a not found DNS error", err)
	}
}

func TestNewClientFromSRV(t *testing.T) {
	s := etcdtest.Start(t)
	put(t, s.Client(t), map[string]string{"/app/a": "srv"})
	u, err := url.Parse(s.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	dns := startDNS(t, map[string][]srvAnswer{
		"_etcd._tcp.example.test.": {{target: "localhost.", port: uint16(port), priority: 1, weight: 1}},
	})

	// As in the original confd, the SRV record replaces the endpoints.
	cfg := Config{SRVDomain: "example.test", Endpoints: []string{deadEndpoint(t)}, Resolver: dns.resolver()}
	c, _, err := newTestClient(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Endpoints(), []string{"http://localhost:" + u.Port()}; !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints = %q, want %q", got, want)
	}
	checkRead(t, c, map[string]string{"/app/a": "srv"})

	cfg.SRVDomain = "missing.test"
	if _, _, err := newTestClient(t, cfg); err == nil || !strings.Contains(err.Error(), "_etcd._tcp.missing.test.") {
		t.Errorf("error = %v, want one naming the record", err)
	}
}
