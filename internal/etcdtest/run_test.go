package etcdtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestRunOutsideTests(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	dir := filepath.Join(t.TempDir(), "etcd")
	s, err := Run(context.Background(), dir)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	func() {
		defer s.Stop()
		checkLoopbackURL(t, s.Endpoints()[0], "http")
		if got := s.DataDir(); got != dir {
			t.Errorf("DataDir() = %q, want %q", got, dir)
		}
		c, err := s.Dial()
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		mustPut(t, c, "/run", "yes")
		if got := mustGet(t, c, "/run"); got != "yes" {
			t.Errorf("get /run = %q, want %q", got, "yes")
		}
	}()
	// The data lives where the caller said, and outlives the member.
	if _, err := os.Stat(filepath.Join(dir, "member")); err != nil {
		t.Errorf("data directory: %v", err)
	}
	// Stop waits for the member; nothing may keep running after it.
	goleak.VerifyNone(t, opts)
}

func TestRunNeedsDataDir(t *testing.T) {
	if s, err := Run(context.Background(), ""); err == nil {
		s.Stop()
		t.Fatal("Run with no data directory succeeded, want an error")
	}
}

func TestRunGivesUpWhenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := Run(ctx, t.TempDir())
	if err == nil {
		s.Stop()
		t.Fatal("Run with a canceled context succeeded, want an error")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run error = %v, want context.Canceled", err)
	}
}
