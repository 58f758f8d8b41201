package dnstest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// SRV is one SRV record. Target is a host name; a missing trailing dot is
// added.
type SRV struct {
	Priority uint16
	Weight   uint16
	Port     uint16
	Target   string
}

// Zone is the table the server answers from. Names are matched without
// regard to case or a trailing dot.
type Zone struct {
	// IP maps a host name to its addresses: IPv4 addresses are answered
	// as A records, IPv6 addresses as AAAA records.
	IP map[string][]netip.Addr
	// SRV maps an owner name such as "_etcd-client._tcp.example.test" to
	// its records.
	SRV map[string][]SRV
}

// maxUDPSize is the largest answer sent over UDP; larger answers are sent
// truncated so that the client asks again over TCP.
const maxUDPSize = 512

// ttl is the time to live of every answer, in seconds.
const ttl = 60

// Server is a running test DNS server. Start returns one; it is closed by
// the test's Cleanup.
type Server struct {
	udp   *net.UDPConn
	tcp   *net.TCPListener
	ip    map[string][]netip.Addr
	srv   map[string][]SRV
	names map[string]bool

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// Start starts a server for zone on 127.0.0.1 with ephemeral ports and
// registers its Close with t.Cleanup.
func Start(t testing.TB, zone Zone) *Server {
	t.Helper()
	s, err := listen(zone)
	if err != nil {
		t.Fatalf("start dns server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func listen(zone Zone) (*Server, error) {
	s := &Server{
		ip:    map[string][]netip.Addr{},
		srv:   map[string][]SRV{},
		names: map[string]bool{},
		conns: map[net.Conn]struct{}{},
	}
	for name, addrs := range zone.IP {
		n := canonical(name)
		s.ip[n] = append(s.ip[n], addrs...)
		s.names[n] = true
	}
	for name, recs := range zone.SRV {
		n := canonical(name)
		s.srv[n] = append(s.srv[n], recs...)
		s.names[n] = true
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("listen udp: %w", err)
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("listen tcp: %w", err)
	}
	s.udp, s.tcp = udp, tcp
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	return s, nil
}

// UDPAddr is the address the server answers UDP queries on.
func (s *Server) UDPAddr() string { return s.udp.LocalAddr().String() }

// TCPAddr is the address the server answers TCP queries on.
func (s *Server) TCPAddr() string { return s.tcp.Addr().String() }

// Resolver returns a pure-Go resolver that sends every query to s, over
// UDP or TCP as the resolver asks, whatever name server the system is
// configured with.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			if strings.HasPrefix(network, "tcp") {
				return d.DialContext(ctx, "tcp", s.TCPAddr())
			}
			return d.DialContext(ctx, "udp", s.UDPAddr())
		},
	}
}

// Close stops the server and waits for its goroutines. It may be called
// more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, addr, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		resp, ok := s.answer(buf[:n], maxUDPSize)
		if !ok {
			continue
		}
		_, _ = s.udp.WriteToUDPAddrPort(resp, addr)
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// serveConn answers length-prefixed queries on one TCP connection until the
// client closes it or the server stops.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	for {
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return
		}
		var lenBuf [2]byte
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp, ok := s.answer(msg, 65535)
		if !ok {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answer builds the response to the query msg; ok is false when msg is not
// a query worth answering. An answer longer than limit is replaced by an
// empty, truncated one.
func (s *Server) answer(msg []byte, limit int) (resp []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	rh := dnsmessage.Header{
		ID:                 h.ID,
		Response:           true,
		Authoritative:      true,
		RecursionDesired:   h.RecursionDesired,
		RecursionAvailable: true,
	}
	name := canonical(q.Name.String())
	if !s.names[name] {
		rh.RCode = dnsmessage.RCodeNameError
	}
	full, err := s.build(rh, q, name, false)
	if err != nil {
		rh.RCode = dnsmessage.RCodeServerFailure
		full, err = s.build(rh, q, name, true)
		if err != nil {
			return nil, false
		}
	}
	if len(full) <= limit {
		return full, true
	}
	rh.Truncated = true
	resp, err = s.build(rh, q, name, true)
	return resp, err == nil
}

func (s *Server) build(h dnsmessage.Header, q dnsmessage.Question, name string, empty bool) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if !empty && h.RCode == dnsmessage.RCodeSuccess {
		if err := s.addAnswers(&b, q, name); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

func (s *Server) addAnswers(b *dnsmessage.Builder, q dnsmessage.Question, name string) error {
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: ttl}
	switch q.Type {
	case dnsmessage.TypeA:
		rh.Type = dnsmessage.TypeA
		for _, a := range s.ip[name] {
			if a.Unmap().Is4() {
				if err := b.AResource(rh, dnsmessage.AResource{A: a.Unmap().As4()}); err != nil {
					return err
				}
			}
		}
	case dnsmessage.TypeAAAA:
		rh.Type = dnsmessage.TypeAAAA
		for _, a := range s.ip[name] {
			if a.Is6() && !a.Is4In6() {
				if err := b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()}); err != nil {
					return err
				}
			}
		}
	case dnsmessage.TypeSRV:
		rh.Type = dnsmessage.TypeSRV
		for _, r := range s.srv[name] {
			target, err := dnsmessage.NewName(canonical(r.Target))
			if err != nil {
				return fmt.Errorf("srv target %q: %w", r.Target, err)
			}
			rec := dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: target}
			if err := b.SRVResource(rh, rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// canonical returns name in lower case with exactly one trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}
