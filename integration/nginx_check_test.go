package integration

// The example's check script, examples/nginx/nginx-check-include.sh, run on
// its own against configuration trees laid out the ways nginx includes
// files.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNginxCheckInclude runs the check script on config trees laid out in
// the ways nginx includes files. A case is discriminating when the live
// file and the staged file disagree: the result must follow the staged one.
func TestNginxCheckInclude(t *testing.T) {
	bin := nginxBin(t)
	const (
		good  = "upstream app { server 127.0.0.1:8080; }\n"
		bad   = "upstream app { server 127.0.0.1:99999; }\n"
		empty = "upstream app { }\n"
	)
	tests := []struct {
		name string
		// files of the tree (the directory of nginx.conf); ROOT is the
		// tree, PREFIX the nginx prefix; "-> x" makes a symbolic link to x.
		files  map[string]string
		dest   string // relative to ROOT, or absolute after ROOT/PREFIX expansion
		staged string
		args   []string // replaces the usual arguments when set
		code   int
		output string // expected in the output
	}{
		{
			name:  "relative glob, new file bad",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "conf.d/app-upstream.conf", staged: bad,
			code: 1, output: `invalid port in upstream "127.0.0.1:99999" in ROOT/conf.d/app-upstream.conf:1`,
		},
		{
			name:  "relative glob, live file bad",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": bad},
			dest:  "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name:  "absolute glob, new file bad",
			files: map[string]string{"nginx.conf": "include ROOT/conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "conf.d/app-upstream.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name:  "absolute glob, live file bad",
			files: map[string]string{"nginx.conf": "include ROOT/conf.d/*.conf;", "conf.d/app-upstream.conf": bad},
			dest:  "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name:  "quoted path, new file bad",
			files: map[string]string{"nginx.conf": `include "ROOT/upstreams/app.conf";`, "upstreams/app.conf": good},
			dest:  "upstreams/app.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name: "included from an included file",
			files: map[string]string{
				"nginx.conf": "include sites-enabled/*;", "sites-enabled/app": "include\tROOT/conf.d/app-upstream.conf;\n",
				"conf.d/app-upstream.conf": bad,
			},
			dest: "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name: "included through a link",
			files: map[string]string{
				"nginx.conf": "include sites-enabled/*.conf;", "sites-enabled/app.conf": "-> ROOT/sites-available/app.conf",
				"sites-available/app.conf": bad,
			},
			dest: "sites-available/app.conf", staged: good,
			output: "test is successful",
		},
		{
			name: "included through a relative link, new file bad",
			files: map[string]string{
				"nginx.conf": "include sites-enabled/*.conf;", "sites-enabled/app.conf": "-> ../sites-available/app.conf",
				"sites-available/app.conf": good,
			},
			dest: "sites-available/app.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name:  "first render, no live file",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/": ""},
			dest:  "conf.d/app-upstream.conf", staged: good,
			output: "test is successful",
		},
		{
			name:  "first render, new file bad",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/": ""},
			dest:  "conf.d/app-upstream.conf", staged: bad,
			code: 1, output: "invalid port",
		},
		{
			name:  "no servers left",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "conf.d/app-upstream.conf", staged: empty,
			code: 1, output: `no servers are inside upstream`,
		},
		{
			name:  "the main file itself",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/app-upstream.conf": good},
			dest:  "nginx.conf", staged: "MAIN:include conf.d/*.conf; server_names_hash_bucket_size x;",
			code: 1, output: `"server_names_hash_bucket_size" directive invalid`,
		},
		{
			name:  "dest outside the tree",
			files: map[string]string{"nginx.conf": "include conf.d/*.conf;", "conf.d/": ""},
			dest:  "PREFIX/app-upstream.conf", staged: good,
			code: 2, output: "is not inside ROOT",
		},
		{
			name:  "wrong usage",
			files: map[string]string{"nginx.conf": ""},
			args:  []string{"only-one"},
			code:  2, output: "usage:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, prefix, tmp := t.TempDir(), nginxPrefix(t), t.TempDir()
			expand := strings.NewReplacer("ROOT", root, "PREFIX", prefix).Replace
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				dir := filepath.Dir(p)
				if strings.HasSuffix(name, "/") {
					dir = p
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.HasSuffix(name, "/"):
					continue
				case strings.HasPrefix(content, "-> "):
					err := os.Symlink(expand(strings.TrimPrefix(content, "-> ")), p)
					if err != nil {
						t.Fatal(err)
					}
					continue
				case name == "nginx.conf":
					content = nginxMainConf(prefix, content)
				}
				if err := os.WriteFile(p, []byte(expand(content)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := tt.args
			if args == nil {
				// Staged as confd stages: a hidden file beside dest.
				dest := expand(tt.dest)
				if !filepath.IsAbs(dest) {
					dest = filepath.Join(root, dest)
				}
				staged := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".123456")
				content := tt.staged
				if m, ok := strings.CutPrefix(content, "MAIN:"); ok {
					content = nginxMainConf(prefix, m)
				}
				if err := os.WriteFile(staged, []byte(expand(content)), 0o600); err != nil {
					t.Fatal(err)
				}
				args = []string{staged, dest, filepath.Join(root, "nginx.conf"), prefix}
			}
			before := nginxTree(t, root)
			code, out := nginxRunScript(t, bin, tmp, args...)
			if code != tt.code || !strings.Contains(out, expand(tt.output)) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and output containing %q", code, out, tt.code, expand(tt.output))
			}
			if after := nginxTree(t, root); after != before {
				t.Errorf("the live tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

// TestNginxCheckIncludeUnprivileged runs the check as an unprivileged user
// (when the test runs as root), to show it needs no privilege beyond what
// nginx -t of the same configuration needs.
func TestNginxCheckIncludeUnprivileged(t *testing.T) {
	bin := nginxBin(t)
	base := t.TempDir()
	root, prefix, tmp := filepath.Join(base, "conf"), filepath.Join(base, "prefix"), filepath.Join(base, "tmp")
	for _, d := range []string{root + "/conf.d", prefix + "/logs", prefix + "/tmp", tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(root, "nginx.conf"):                        nginxMainConf(prefix, "include conf.d/*.conf;"),
		filepath.Join(root, "conf.d", "app-upstream.conf"):       "upstream app { server 127.0.0.1:99999; }\n",
		filepath.Join(root, "conf.d", ".app-upstream.conf.1234"): "upstream app { server 127.0.0.1:8080; }\n",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		const nobody = 65534
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		// nobody must reach base: open its parent, own everything below.
		if err := os.Chmod(filepath.Dir(base), 0o755); err != nil {
			t.Fatal(err)
		}
		err := filepath.WalkDir(base, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out := nginxRunScriptAs(t, cred, bin, tmp, filepath.Join(root, "conf.d", ".app-upstream.conf.1234"),
		filepath.Join(root, "conf.d", "app-upstream.conf"), filepath.Join(root, "nginx.conf"), prefix)
	if code != 0 || !strings.Contains(out, "test is successful") {
		t.Errorf("exit %d, output:\n%s\nwant exit 0 and a successful test", code, out)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func nginxRunScript(t *testing.T, bin, tmp string, args ...string) (int, string) {
	t.Helper()
	return nginxRunScriptAs(t, nil, bin, tmp, args...)
}

// nginxRunScriptAs runs the check script with TMPDIR=tmp, as cred when set.
func nginxRunScriptAs(t *testing.T, cred *syscall.Credential, bin, tmp string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nginxScript(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "NGINX_BIN=" + bin}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	case err != nil:
		t.Fatalf("run the check script: %v", err)
	}
	return 0, out.String()
}

// nginxTree describes every file and link below root, for comparison.
func nginxTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lines = append(lines, rel+" -> "+target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %v %s %q", rel, info.Mode(), info.ModTime().Format(time.RFC3339Nano), b))
		default:
			lines = append(lines, rel+"/")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
