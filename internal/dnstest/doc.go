// Package dnstest runs a small authoritative DNS server on the loopback
// interface for tests. It answers A, AAAA and SRV questions from a table the
// test gives it and NXDOMAIN for every name it does not know, over UDP and
// TCP. Resolver returns a *net.Resolver that sends every query to it, so a
// test never sends DNS traffic anywhere else.
//
// dnstest may import only the standard library and
// golang.org/x/net/dns/dnsmessage.
package dnstest
