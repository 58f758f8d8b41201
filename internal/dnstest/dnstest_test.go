package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/dns/dnsmessage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testZone() Zone {
	many := make([]SRV, 40)
	for i := range many {
		many[i] = SRV{Priority: 10, Weight: 5, Port: uint16(2000 + i), Target: fmt.Sprintf("node-with-a-long-name-%02d.example.test", i)}
	}
	return Zone{
		IP: map[string][]netip.Addr{
			"db.example.test":    {netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")},
			"v6.example.test.":   {netip.MustParseAddr("fd00::2")},
			"MiXeD.Example.Test": {netip.MustParseAddr("10.9.9.9")},
		},
		SRV: map[string][]SRV{
			"_etcd-client._tcp.example.test": {
				{Priority: 0, Weight: 10, Port: 2379, Target: "etcd1.example.test"},
				{Priority: 0, Weight: 10, Port: 2379, Target: "etcd2.example.test."},
			},
			"_big._tcp.example.test": many,
		},
	}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestLookupIP(t *testing.T) {
	s := Start(t, testZone())
	r := s.Resolver()
	tests := []struct {
		host, network string
		want          []string
	}{
		{"db.example.test", "ip", []string{"10.0.0.1", "10.0.0.2", "fd00::1"}},
		{"db.example.test", "ip4", []string{"10.0.0.1", "10.0.0.2"}},
		{"db.example.test", "ip6", []string{"fd00::1"}},
		{"v6.example.test", "ip", []string{"fd00::2"}},
		{"mixed.example.test", "ip4", []string{"10.9.9.9"}},
	}
	for _, tt := range tests {
		t.Run(tt.host+"/"+tt.network, func(t *testing.T) {
			ips, err := r.LookupIP(ctx(t), tt.network, tt.host)
			if err != nil {
				t.Fatalf("LookupIP(%q): %v", tt.host, err)
			}
			got := make([]string, len(ips))
			for i, ip := range ips {
				got[i] = ip.String()
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("LookupIP(%q, %q) = %v, want %v", tt.network, tt.host, got, tt.want)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	s := Start(t, testZone())
	r := s.Resolver()
	_, err := r.LookupIP(ctx(t), "ip", "missing.example.test")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("LookupIP(missing) error = %v, want a not-found *net.DNSError", err)
	}
	_, _, err = r.LookupSRV(ctx(t), "nothing", "tcp", "example.test")
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("LookupSRV(missing) error = %v, want a not-found *net.DNSError", err)
	}
}

func TestLookupSRV(t *testing.T) {
	s := Start(t, testZone())
	_, srvs, err := s.Resolver().LookupSRV(ctx(t), "etcd-client", "tcp", "example.test")
	if err != nil {
		t.Fatalf("LookupSRV: %v", err)
	}
	var got []string
	for _, r := range srvs {
		got = append(got, fmt.Sprintf("%s:%d", r.Target, r.Port))
	}
	slices.Sort(got)
	want := []string{"etcd1.example.test.:2379", "etcd2.example.test.:2379"}
	if !slices.Equal(got, want) {
		t.Errorf("LookupSRV = %v, want %v", got, want)
	}
}

// TestTruncatedFallsBackToTCP asks for more records than fit in a UDP
// answer; the resolver only gets them all by asking again over TCP.
func TestTruncatedFallsBackToTCP(t *testing.T) {
	s := Start(t, testZone())
	_, srvs, err := s.Resolver().LookupSRV(ctx(t), "big", "tcp", "example.test")
	if err != nil {
		t.Fatalf("LookupSRV: %v", err)
	}
	if len(srvs) != 40 {
		t.Errorf("got %d records, want 40", len(srvs))
	}
}

func TestUDPAnswerIsTruncated(t *testing.T) {
	s := Start(t, testZone())
	c, err := net.Dial("udp", s.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("_big._tcp.example.test."), Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if h.ID != 7 || !h.Response || !h.Truncated {
		t.Errorf("header = %+v, want ID 7, a truncated response", h)
	}
	if n > maxUDPSize {
		t.Errorf("udp answer is %d bytes, want at most %d", n, maxUDPSize)
	}
}

func TestCloseTwice(t *testing.T) {
	s := Start(t, Zone{})
	r := s.Resolver()
	s.Close()
	s.Close()
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := r.LookupIP(c, "ip4", "db.example.test"); err == nil {
		t.Error("lookup after Close succeeded, want an error")
	}
}
