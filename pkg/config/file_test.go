package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFileWarnings(t *testing.T) {
	tests := []struct {
		file string
		want []string // without the "config file <path>: " prefix
	}{
		{file: "original.toml"},
		{file: "ours.toml"},
		{file: "filebackend.toml"},
		{file: "otherbackends.toml", want: []string{
			`key "auth_token" is ignored: it is only used by backends this confd does not support`,
			`key "auth_type" is ignored: it is only used by backends this confd does not support`,
			`key "app_id" is ignored: it is only used by backends this confd does not support`,
			`key "user_id" is ignored: it is only used by backends this confd does not support`,
			`key "table" is ignored: it is only used by backends this confd does not support`,
			`key "separator" is ignored: it is only used by backends this confd does not support`,
		}},
		{file: "unknown.toml", want: []string{
			`unknown key "intervall" is ignored`,
			`unknown key "sub" is ignored`,
			`key "version" is ignored: it has no effect in the config file`,
			`unknown key "backend2" is ignored`,
			`unknown key "dotted" is ignored`,
		}},
		{file: "legacy.toml", want: []string{
			`key "verbose" is deprecated; use log-level info`,
			`the [confd] table is deprecated; move its keys to the top level`,
			`key "confd.etcd_nodes" is deprecated; use "nodes"`,
			`unknown key "confd.extra" is ignored`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, warnings, err := Load([]string{"-config-file", path, "-confdir", t.TempDir(), "-backend", "env"}, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, "config file "+path+": "+w)
			}
			// Warnings that are not about the file (e.g. credentials without
			// basic-auth) are not the subject here.
			var got []string
			for _, w := range warnings {
				if strings.HasPrefix(w, "config file ") {
					got = append(got, w)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("warnings:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		file string
		line int
		msg  string
	}{
		{"syntax.toml", 4, "expected a comma (',') or array terminator (']'), but got 'p'"},
		{"badtype.toml", 3, `key "interval": want an integer, got a string`},
		{"duplicate.toml", 3, `key "sync_only": already set by key "sync-only"`},
		{"badduration.toml", 1, `key "command_timeout": want a duration such as 30s or 1m, got "soon"`},
		{"badlist.toml", 1, `key "nodes": want an array of strings, found an integer in it`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, _, err := Load([]string{"-config-file", path}, nil)
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Load error = %v, want a *FileError", err)
			}
			if fe.Path != path || fe.Line != tt.line || fe.Msg != tt.msg {
				t.Errorf("error = {%s %d %q}, want {%s %d %q}", fe.Path, fe.Line, fe.Msg, path, tt.line, tt.msg)
			}
			if errors.Is(err, ErrUsage) {
				t.Errorf("a config file error matches ErrUsage")
			}
		})
	}
}

func TestFileExplicitMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.toml")
	for name, in := range map[string]struct{ args, env []string }{
		"flag": {args: []string{"-config-file", path}},
		"env":  {env: []string{"CONFD_CONFIG_FILE=" + path}},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Load(in.args, in.env)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Load error = %v, want one matching fs.ErrNotExist", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
		})
	}
}
