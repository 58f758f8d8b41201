package render

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/etcdconfd/confd/internal/dnstest"
)

func dnsZone() dnstest.Zone {
	return dnstest.Zone{
		IP: map[string][]netip.Addr{
			"db.example.test": {
				netip.MustParseAddr("10.0.0.20"),
				netip.MustParseAddr("10.0.0.3"),
				netip.MustParseAddr("fd00::b"),
				netip.MustParseAddr("fd00::a"),
			},
			"v4only.example.test": {netip.MustParseAddr("192.0.2.1")},
			"v6only.example.test": {netip.MustParseAddr("2001:db8::1")},
		},
		SRV: map[string][]dnstest.SRV{
			"_etcd-client._tcp.example.test": {
				{Priority: 0, Weight: 10, Port: 2379, Target: "etcd2.example.test"},
				{Priority: 0, Weight: 10, Port: 2379, Target: "etcd1.example.test"},
				{Priority: 10, Weight: 5, Port: 80, Target: "etcd1.example.test"},
			},
			// The original orders by the text target+port+priority+weight:
			// "t.80105" < "t.801050" although 8010 > 80 is not what
			// decides it, and "t.1234" is the text of both port 1
			// priority 23 and port 12 priority 3.
			"_odd._tcp.example.test": {
				{Priority: 5, Weight: 0, Port: 8010, Target: "t.example.test"},
				{Priority: 3, Weight: 4, Port: 12, Target: "t.example.test"},
				{Priority: 10, Weight: 5, Port: 80, Target: "t.example.test"},
				{Priority: 23, Weight: 4, Port: 1, Target: "t.example.test"},
			},
		},
	}
}

func TestLookupFuncs(t *testing.T) {
	srv := dnstest.Start(t, dnsZone())
	opts := testOptions()
	opts.Resolver = srv.Resolver()
	runFuncCases(t, storeOf(nil), opts, []funcCase{
		{"lookupIP sorted strings", `{{lookupIP "db.example.test"}}`, "[10.0.0.20 10.0.0.3 fd00::a fd00::b]", ""},
		{"lookupIP range", `{{range lookupIP "v4only.example.test"}}server {{.}}:80;{{end}}`, "server 192.0.2.1:80;", ""},
		{"lookupIP literal", `{{lookupIP "127.0.0.1"}}`, "[127.0.0.1]", ""},
		{"lookupIP not found", `{{lookupIP "missing.example.test"}} {{len (lookupIP "missing.example.test")}}`, "[] 0", ""},
		{"lookupIPV4", `{{lookupIPV4 "db.example.test"}}`, "[10.0.0.20 10.0.0.3]", ""},
		{"lookupIPV4 none", `{{len (lookupIPV4 "v6only.example.test")}}`, "0", ""},
		{"lookupIPV6", `{{lookupIPV6 "db.example.test"}}`, "[fd00::a fd00::b]", ""},
		{"lookupIPV6 none", `{{len (lookupIPV6 "v4only.example.test")}}`, "0", ""},
		{"lookupSRV", `{{range lookupSRV "etcd-client" "tcp" "example.test"}}{{.Target}}:{{.Port}}/{{.Priority}}/{{.Weight}};{{end}}`,
			"etcd1.example.test.:2379/0/10;etcd1.example.test.:80/10/5;etcd2.example.test.:2379/0/10;", ""},
		{"lookupSRV original order", `{{range lookupSRV "odd" "tcp" "example.test"}}{{.Port}}/{{.Priority}};{{end}}`,
			"1/23;12/3;80/10;8010/5;", ""},
		{"lookupSRV not found", `{{len (lookupSRV "none" "tcp" "example.test")}}`, "0", ""},
	})
}

func TestLookupSRVOrderIsStable(t *testing.T) {
	srv := dnstest.Start(t, dnsZone())
	opts := testOptions()
	opts.Resolver = srv.Resolver()
	tmpl, err := Parse("srv", `{{range lookupSRV "odd" "tcp" "example.test"}}{{.Port}}/{{.Priority}};{{end}}`, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		out, err := tmpl.Execute(context.Background(), storeOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), "1/23;12/3;80/10;8010/5;"; got != want {
			t.Fatalf("run %d: got %q, want %q", i, got, want)
		}
	}
}

// TestLookupFailureIsAnError checks that a DNS failure other than "no such
// name" fails the render instead of rendering an empty list.
func TestLookupFailureIsAnError(t *testing.T) {
	for _, tmpl := range []string{
		`{{lookupIP "db.example.test"}}`,
		`{{lookupIPV4 "db.example.test"}}`,
		`{{lookupIPV6 "db.example.test"}}`,
		`{{lookupSRV "etcd-client" "tcp" "example.test"}}`,
	} {
		_, err := renderString(t, tmpl, storeOf(nil), testOptions())
		var de *net.DNSError
		if !errors.As(err, &de) || de.IsNotFound || !strings.Contains(err.Error(), errNoDNS.Error()) {
			t.Errorf("%s: got %v, want a *net.DNSError saying %q", tmpl, err, errNoDNS)
		}
	}
}

func TestLookupHonoursContext(t *testing.T) {
	srv := dnstest.Start(t, dnsZone())
	opts := testOptions()
	opts.Resolver = srv.Resolver()
	tmpl, err := Parse("ctx", `{{lookupIP "db.example.test"}}`, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tmpl.Execute(ctx, storeOf(nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
