package etcd

import (
	"testing"
	"time"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

func TestReaderChanged(t *testing.T) {
	s := etcdtest.Start(t)
	c := s.Client(t)
	put(t, c, map[string]string{"/app": "root", "/app/a": "1", "/app/b/c": "2", "/appx": "x"})
	r := &Reader{Client: c, RequestTimeout: 10 * time.Second}
	roots := []string{"/app"}
	ctx := testContext(t, 30*time.Second)

	steps := []struct {
		name   string
		change func()
		want   bool
	}{
		{"nothing", func() {}, false},
		{"outside the prefix", func() { put(t, c, map[string]string{"/appx": "y", "/app-1": "z"}) }, false},
		{"put", func() { put(t, c, map[string]string{"/app/a": "1"}) }, true},
		{"create", func() { put(t, c, map[string]string{"/app/new": "n"}) }, true},
		{"prefix key itself", func() { put(t, c, map[string]string{"/app": "root2"}) }, true},
		{"delete", func() {
			if _, err := c.Delete(ctx, "/app/b/c"); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, st := range steps {
		snap, err := r.Snapshot(ctx, roots)
		if err != nil {
			t.Fatal(err)
		}
		st.change()
		got, err := r.Changed(ctx, roots, snap)
		if err != nil {
			t.Fatal(err)
		}
		if got != st.want {
			t.Errorf("%s: Changed = %v, want %v", st.name, got, st.want)
		}
	}
}
