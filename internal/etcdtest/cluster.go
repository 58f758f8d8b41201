package etcdtest

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cluster is several etcd members in the test process that form one
// cluster.
type Cluster struct {
	Members []*Server
}

// StartCluster runs a cluster of n members on 127.0.0.1 and waits until
// every member serves clients. The members are stopped when the test ends.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: cluster of %d members", n)
	}
	return &Cluster{Members: startMembers(t, n, opts)}
}

// Endpoints returns the client URLs of all members in member order.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, 0, len(c.Members))
	for _, m := range c.Members {
		eps = append(eps, m.Endpoints()...)
	}
	return eps
}

// Client returns a client that balances over all members, closed when the
// test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, c.Endpoints(), c.Members[0].tls)
}
