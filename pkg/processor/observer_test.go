package processor

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/etcdconfd/confd/pkg/filesync"
	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/resource"
)

// recorder is an Observer that records every call as a line.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func errText(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (r *recorder) Rendered(res string, rev int64, _ time.Duration, err error) {
	r.add("rendered %s %d %s", res, rev, errText(err))
}
func (r *recorder) Checked(res string, _ time.Duration, err error) {
	r.add("checked %s %s", res, errText(err))
}
func (r *recorder) Reloaded(res string, _ time.Duration, err error) {
	r.add("reloaded %s %s", res, errText(err))
}
func (r *recorder) Pending(res string, p bool) { r.add("pending %s %v", res, p) }

func TestObserverSeesEveryOutcome(t *testing.T) {
	tests := []struct {
		name      string
		tmpl      string
		checkCmd  string
		reloadCmd string
		want      []string
	}{
		{
			name: "installed without commands",
			tmpl: `x={{getv "/app/x"}}`,
			want: []string{"rendered r.toml 7 ok", "pending r.toml false"},
		},
		{
			name: "checked and reloaded", tmpl: `x={{getv "/app/x"}}`,
			checkCmd: "true", reloadCmd: "true",
			want: []string{"rendered r.toml 7 ok", "checked r.toml ok", "reloaded r.toml ok", "pending r.toml false"},
		},
		{
			name: "check fails", tmpl: `x={{getv "/app/x"}}`,
			checkCmd: "exit 1", reloadCmd: "true",
			want: []string{"rendered r.toml 7 error", "checked r.toml error", "pending r.toml true"},
		},
		{
			name: "reload fails", tmpl: `x={{getv "/app/x"}}`,
			checkCmd: "true", reloadCmd: "exit 1",
			want: []string{"rendered r.toml 7 error", "checked r.toml ok", "reloaded r.toml error", "pending r.toml true"},
		},
		{
			name: "missing key", tmpl: `y={{getv "/app/y"}}`,
			checkCmd: "true",
			want:     []string{"rendered r.toml 7 error", "pending r.toml true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newResource(t, dir, "r", tt.tmpl, "/app")
			r.CheckCmd, r.ReloadCmd = tt.checkCmd, tt.reloadCmd
			snap := kv.FromMap(7, map[string]string{"/app/x": "1"})
			src := SourceFunc(func(context.Context, []string) (*kv.Snapshot, error) { return snap, nil })
			rec := &recorder{}
			p, errs := New(quietLogger(), src, testSyncer(t, filesync.Options{}), []resource.Resource{r}, Options{Observer: rec})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			_ = p.Once(context.Background())
			if !reflect.DeepEqual(rec.calls, tt.want) {
				t.Errorf("observer got\n%q\nwant\n%q", rec.calls, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	dir := t.TempDir()
	p, errs := New(quietLogger(), nil, nil, []resource.Resource{
		newResource(t, dir, "a", "a", "/a"),
		newResource(t, dir, "b", "b", "/b"),
	}, Options{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := p.Names(), []string{"a.toml", "b.toml"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}
