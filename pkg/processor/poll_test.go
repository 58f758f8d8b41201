package processor

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcdconfd/confd/internal/syncio"
	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/resource"
)

// hangingPoller answers the first read and then, while down is set, never
// answers a probe, as the etcd client does while every endpoint is down.
type hangingPoller struct {
	snap *kv.Snapshot
	down atomic.Bool
}

func (h *hangingPoller) Snapshot(context.Context, []string) (*kv.Snapshot, error) { return h.snap, nil }

func (h *hangingPoller) Changed(ctx context.Context, _ []string, _ *kv.Snapshot) (bool, error) {
	if h.down.Load() {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return false, nil
}

// TestPollNoticesBackendNotAnswering checks that a probe without an answer
// is logged as an outage within a few ticks, and the recovery after it.
func TestPollNoticesBackendNotAnswering(t *testing.T) {
	dir := t.TempDir()
	r := newResource(t, dir, "a", `v={{getv "/a/v"}}`, "/a")
	var buf syncio.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	src := &hangingPoller{snap: kv.FromMap(1, map[string]string{"/a/v": "1"})}
	p, _ := New(log, src, newCounting(t, nil), []resource.Resource{r}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Poll(ctx, src, DaemonOptions{Interval: 50 * time.Millisecond}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Poll: %v", err)
		}
	}()
	waitContent(t, r.Dest, "v=1")

	src.down.Store(true)
	start := time.Now()
	waitLog(t, &buf, "backend unavailable, keeping the last good files", 5*time.Second)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the outage was logged after %v, want within a few ticks of %v", took, minProbeWait)
	}
	src.down.Store(false)
	waitLog(t, &buf, "backend back", 5*time.Second)
}

func waitLog(t *testing.T, buf *syncio.Buffer, msg string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(buf.String(), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("log has no %q:\n%s", msg, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
