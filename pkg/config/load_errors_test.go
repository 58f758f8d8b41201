package config

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		args  []string
		files map[string]string
		usage bool   // errors.Is(err, ErrUsage)
		want  string // the whole message; $DIR expanded
	}{
		{
			name: "unknown flag", usage: true,
			args: []string{"-nosuch"},
			want: "flag provided but not defined: -nosuch",
		},
		{
			name: "bad flag value", usage: true,
			args: []string{"-interval", "abc"},
			want: `invalid value "abc" for flag -interval: want a whole number`,
		},
		{
			name: "bad duration flag", usage: true,
			args: []string{"-dial-timeout", "soon"},
			want: `invalid value "soon" for flag -dial-timeout: want a duration such as 30s or 1m, got "soon"`,
		},
		{
			name: "positional argument", usage: true,
			args: []string{"-onetime", "extra"},
			want: `unexpected argument "extra": confd takes only flags`,
		},
		{
			name: "bad env integer", usage: true,
			env:  []string{"CONFD_INTERVAL=abc"},
			args: []string{"-confdir", "$DIR"},
			want: `environment variable CONFD_INTERVAL: invalid value "abc": want a whole number`,
		},
		{
			name: "bad env bool", usage: true,
			env:  []string{"CONFD_WATCH=maybe"},
			args: []string{"-confdir", "$DIR"},
			want: `environment variable CONFD_WATCH: invalid value "maybe": want true or false`,
		},
		{
			name: "bad env value is reported even when a flag overrides it", usage: true,
			env:  []string{"CONFD_INTERVAL=abc"},
			args: []string{"-confdir", "$DIR", "-interval", "5"},
			want: `environment variable CONFD_INTERVAL: invalid value "abc": want a whole number`,
		},
		{
			name: "invalid merged value", usage: true,
			env:  []string{"CONFD_INTERVAL=-1"},
			args: []string{"-confdir", "$DIR"},
			want: "interval: must be positive, got -1",
		},
		{
			name: "missing explicit config file flag",
			args: []string{"-config-file", "$DIR/missing.toml"},
			want: "read config file: open $DIR/missing.toml: no such file or directory",
		},
		{
			name: "missing explicit config file env",
			env:  []string{"CONFD_CONFIG_FILE=$DIR/missing.toml"},
			want: "read config file: open $DIR/missing.toml: no such file or directory",
		},
		{
			name:  "syntax error",
			files: map[string]string{"confd.toml": "interval = 30\nnodes = [\n"},
			args:  []string{"-confdir", "$DIR"},
			want:  "config file $DIR/confd.toml: line 2: unexpected EOF; expected value",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, args, env := setup(t, tt.files, tt.args, tt.env)
			c, _, err := Load(args, env)
			if err == nil {
				t.Fatalf("Load(%q) = %+v, want an error", args, c)
			}
			if got, want := err.Error(), strings.ReplaceAll(tt.want, "$DIR", dir); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
			if got := errors.Is(err, ErrUsage); got != tt.usage {
				t.Errorf("errors.Is(err, ErrUsage) = %v, want %v", got, tt.usage)
			}
			if errors.Is(err, flag.ErrHelp) {
				t.Errorf("error matches flag.ErrHelp")
			}
		})
	}
}

func TestLoadMissingDefaultConfigFile(t *testing.T) {
	_, args, _ := setup(t, nil, []string{"-confdir", "$DIR/none"}, nil)
	if _, _, err := Load(args, nil); err != nil {
		t.Errorf("Load without a config file in the default place: %v", err)
	}
}

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		_, _, err := Load([]string{"-onetime", arg}, nil)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("Load(%s) error = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestLoadVersionSkipsConfig(t *testing.T) {
	_, args, env := setup(t, map[string]string{"confd.toml": "interval = [\n"},
		[]string{"-confdir", "$DIR", "-version"}, []string{"CONFD_INTERVAL=abc", "CONFD_VERSION=0.16.0"})
	c, _, err := Load(args, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !c.Version {
		t.Errorf("Version = false, want true")
	}
}

func TestLoadEnvIgnoresForeignVariables(t *testing.T) {
	// Images commonly set CONFD_VERSION to the release they install.
	_, args, env := setup(t, nil, []string{"-confdir", "$DIR"}, []string{"CONFD_VERSION=0.16.0", "CONFD_OPTS=-x", "PATH=/bin", "CONFD_DEBUG=yes"})
	c, warnings, err := Load(args, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Version || len(warnings) != 0 {
		t.Errorf("Version = %v, warnings = %q; want false, none", c.Version, warnings)
	}
}

func TestLoadBackendRefused(t *testing.T) {
	const want = "backend: %q is not supported; supported backends: etcdv3 (or etcd), env, file"
	for _, b := range []string{"consul", "vault", "redis", "zookeeper", "dynamodb", "ssm", "rancher", "etcdv2", ""} {
		sources := map[string]struct {
			files map[string]string
			env   []string
			args  []string
		}{
			"flag": {args: []string{"-confdir", "$DIR", "-backend", b}},
			"env":  {env: []string{"CONFD_BACKEND=" + b}, args: []string{"-confdir", "$DIR"}},
			"file": {files: map[string]string{"confd.toml": fmt.Sprintf("backend = %q\n", b)}, args: []string{"-confdir", "$DIR"}},
		}
		for source, in := range sources {
			if b == "" && source == "env" {
				continue // an empty variable is unset
			}
			t.Run(b+"/"+source, func(t *testing.T) {
				_, args, env := setup(t, in.files, in.args, in.env)
				_, _, err := Load(args, env)
				if err == nil {
					t.Fatal("Load succeeded, want an error")
				}
				if got, want := err.Error(), fmt.Sprintf(want, b); got != want {
					t.Errorf("error:\n got %s\nwant %s", got, want)
				}
				if !errors.Is(err, ErrUsage) {
					t.Errorf("error does not match ErrUsage")
				}
			})
		}
	}
}
