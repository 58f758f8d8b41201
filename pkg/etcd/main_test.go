package etcd

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind, such as
// an unfinished probe of NewClient.
//
// One goroutine of etcd's own is let through: a member of a test cluster
// that answers another's request for its version while it stops can block
// for good on its closed backend (etcd-io/etcd#22189, the same race that
// crashes a member there).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/etcdhttp.newPeerHandler.versionHandler.func1"))
}
