package etcd

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind, such as
// an unfinished probe of NewClient.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
