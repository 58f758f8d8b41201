package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// setup writes files (name -> content) into a temporary directory and
// replaces $DIR with it in args and env.
func setup(t *testing.T, files map[string]string, args, env []string) (dir string, gotArgs, gotEnv []string) {
	t.Helper()
	dir = t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	expand := func(in []string) []string {
		var out []string
		for _, s := range in {
			out = append(out, strings.ReplaceAll(s, "$DIR", dir))
		}
		return out
	}
	return dir, expand(args), expand(env)
}

// field returns a Config field by name, formatted with fmt.Sprint.
func field(c *Config, name string) string {
	v := reflect.ValueOf(c).Elem().FieldByName(name)
	if !v.IsValid() {
		return "<no field " + name + ">"
	}
	return fmt.Sprint(v.Interface())
}

func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		env   []string
		args  []string
		want  map[string]string // field -> fmt.Sprint of value; $DIR expanded
	}{
		{
			name: "defaults",
			args: []string{"-confdir", "$DIR"},
			want: map[string]string{
				"Backend": "etcdv3", "Nodes": "[http://127.0.0.1:2379]", "Scheme": "http",
				"Interval": "600", "LogLevel": "info", "LogFormat": "text", "Filter": "*",
				"CommandTimeout": "1m0s", "DialTimeout": "5s", "RequestTimeout": "10s",
				"ConfDir": "$DIR", "ConfigFile": "$DIR/confd.toml", "Prefix": "",
				"Watch": "false", "Onetime": "false", "SRVRecord": "",
			},
		},
		{
			name:  "file over defaults",
			files: map[string]string{"confd.toml": "interval = 30\nprefix = \"/p\"\nwatch = true\nlog-level = \"debug\"\nnodes = [\"10.0.0.1:2379\"]\n"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Interval": "30", "Prefix": "/p", "Watch": "true", "LogLevel": "debug", "Nodes": "[http://10.0.0.1:2379]"},
		},
		{
			name:  "env over file",
			files: map[string]string{"confd.toml": "interval = 30\nprefix = \"/f\"\n"},
			env:   []string{"CONFD_INTERVAL=40"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Interval": "40", "Prefix": "/f"},
		},
		{
			name:  "flag over env over file",
			files: map[string]string{"confd.toml": "interval = 30\n"},
			env:   []string{"CONFD_INTERVAL=40", "CONFD_PREFIX=/e"},
			args:  []string{"-confdir", "$DIR", "-interval", "50"},
			want:  map[string]string{"Interval": "50", "Prefix": "/e"},
		},
		{
			name:  "unset flags do not override the file",
			files: map[string]string{"confd.toml": "interval = 30\nwatch = true\nlog-level = \"warn\"\nbackend = \"env\"\n"},
			args:  []string{"-confdir", "$DIR", "-onetime"},
			want:  map[string]string{"Interval": "30", "Watch": "true", "LogLevel": "warn", "Onetime": "true", "Backend": "env"},
		},
		{
			name: "unset flags do not override env",
			env:  []string{"CONFD_WATCH=true", "CONFD_LOG_LEVEL=debug"},
			args: []string{"-confdir", "$DIR", "-noop"},
			want: map[string]string{"Watch": "true", "LogLevel": "debug", "Noop": "true"},
		},
		{
			name:  "false flag overrides true in file",
			files: map[string]string{"confd.toml": "watch = true\n"},
			args:  []string{"-confdir", "$DIR", "-watch=false"},
			want:  map[string]string{"Watch": "false"},
		},
		{
			name:  "false env overrides true in file",
			files: map[string]string{"confd.toml": "watch = true\n"},
			env:   []string{"CONFD_WATCH=0"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Watch": "false"},
		},
		{
			name:  "empty env variable counts as unset",
			files: map[string]string{"confd.toml": "interval = 30\n"},
			env:   []string{"CONFD_INTERVAL="},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Interval": "30"},
		},
		{
			name:  "env nodes replace file nodes",
			files: map[string]string{"confd.toml": "nodes = [\"a:1\", \"b:1\"]\n"},
			env:   []string{"CONFD_NODE=c:1,,d:1"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Nodes": "[http://c:1 http://d:1]"},
		},
		{
			name:  "flag nodes replace env nodes, repeatable and comma-separated",
			files: map[string]string{"confd.toml": "nodes = [\"a:1\"]\n"},
			env:   []string{"CONFD_NODE=c:1"},
			args:  []string{"-confdir", "$DIR", "-node", "e:1", "--node", "f:1,g:1,"},
			want:  map[string]string{"Nodes": "[http://e:1 http://f:1 http://g:1]"},
		},
		{
			name:  "file nodes kept when env sets something else",
			files: map[string]string{"confd.toml": "nodes = \"a:1,b:1\"\n"},
			env:   []string{"CONFD_PREFIX=/x"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Nodes": "[http://a:1 http://b:1]"},
		},
		{
			name:  "confdir from env locates the file",
			files: map[string]string{"confd.toml": "interval = 30\n"},
			env:   []string{"CONFD_CONFDIR=$DIR"},
			want:  map[string]string{"Interval": "30", "ConfDir": "$DIR", "ConfigFile": "$DIR/confd.toml"},
		},
		{
			name:  "confdir flag beats env for locating the file",
			files: map[string]string{"confd.toml": "interval = 30\n"},
			env:   []string{"CONFD_CONFDIR=$DIR/nonexistent"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Interval": "30", "ConfDir": "$DIR"},
		},
		{
			name:  "confdir in the file sets confdir but does not move the file",
			files: map[string]string{"confd.toml": "confdir = \"/srv/confd\"\n"},
			env:   []string{"CONFD_CONFDIR=$DIR"},
			want:  map[string]string{"ConfDir": "$DIR", "ConfigFile": "$DIR/confd.toml"},
		},
		{
			name:  "confdir in the file applies when only the config file is named",
			files: map[string]string{"c.toml": "confdir = \"/srv/confd\"\n"},
			args:  []string{"-config-file", "$DIR/c.toml"},
			want:  map[string]string{"ConfDir": "/srv/confd", "ConfigFile": "$DIR/c.toml"},
		},
		{
			name:  "config file from env",
			files: map[string]string{"other.toml": "interval = 7\n", "confd.toml": "interval = 30\n"},
			env:   []string{"CONFD_CONFIG_FILE=$DIR/other.toml"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Interval": "7", "ConfigFile": "$DIR/other.toml"},
		},
		{
			name:  "config file flag beats env",
			files: map[string]string{"other.toml": "interval = 7\n", "third.toml": "interval = 8\n"},
			env:   []string{"CONFD_CONFIG_FILE=$DIR/other.toml"},
			args:  []string{"-config-file", "$DIR/third.toml"},
			want:  map[string]string{"Interval": "8", "ConfigFile": "$DIR/third.toml"},
		},
		{
			name: "example from old articles",
			args: []string{"-verbose", "-interval", "10", "-node", "192.168.1.21:4001", "-confdir", "$DIR"},
			want: map[string]string{"LogLevel": "info", "Interval": "10", "Nodes": "[http://192.168.1.21:4001]", "ConfDir": "$DIR"},
		},
		{
			name: "debug flag",
			args: []string{"-confdir", "$DIR", "-debug"},
			want: map[string]string{"LogLevel": "debug"},
		},
		{
			name:  "quiet flag over file log-level",
			files: map[string]string{"confd.toml": "log-level = \"debug\"\n"},
			args:  []string{"-confdir", "$DIR", "-quiet"},
			want:  map[string]string{"LogLevel": "error"},
		},
		{
			name: "later log flag wins",
			args: []string{"-confdir", "$DIR", "-debug", "-log-level", "WARN"},
			want: map[string]string{"LogLevel": "warn"},
		},
		{
			name: "debug=false changes nothing",
			env:  []string{"CONFD_LOG_LEVEL=trace"},
			args: []string{"-confdir", "$DIR", "-debug=false"},
			want: map[string]string{"LogLevel": "trace"},
		},
		{
			name:  "debug key in file",
			files: map[string]string{"confd.toml": "debug = true\n"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"LogLevel": "debug"},
		},
		{
			name: "https when TLS is configured",
			args: []string{"-confdir", "$DIR", "-client-ca-keys", "/ca.pem", "-node", "h:2379", "-node", "http://plain:2379"},
			want: map[string]string{"Scheme": "https", "Nodes": "[https://h:2379 http://plain:2379]"},
		},
		{
			name: "scheme flag",
			args: []string{"-confdir", "$DIR", "-scheme", "HTTPS", "-node", "h:2379"},
			want: map[string]string{"Scheme": "https", "Nodes": "[https://h:2379]"},
		},
		{
			name: "explicit http scheme with TLS",
			env:  []string{"CONFD_SCHEME=http"},
			args: []string{"-confdir", "$DIR", "-client-cert", "/c", "-client-key", "/k", "-node", "h:2379"},
			want: map[string]string{"Scheme": "http", "Nodes": "[http://h:2379]"},
		},
		{
			name: "default node with TLS",
			args: []string{"-confdir", "$DIR", "-client-insecure"},
			want: map[string]string{"Scheme": "https", "Nodes": "[https://127.0.0.1:2379]"},
		},
		{
			name: "etcd is etcdv3",
			args: []string{"-confdir", "$DIR", "-backend", "etcd"},
			want: map[string]string{"Backend": "etcdv3"},
		},
		{
			name: "env backend has no nodes",
			args: []string{"-confdir", "$DIR", "-backend", "env"},
			want: map[string]string{"Backend": "env", "Nodes": "[]"},
		},
		{
			name: "srv domain with the default backend",
			args: []string{"-confdir", "$DIR", "-srv-domain", "example.com"},
			want: map[string]string{"SRVRecord": "_etcd._tcp.example.com.", "Nodes": "[]"},
		},
		{
			name: "srv domain with etcdv3",
			args: []string{"-confdir", "$DIR", "-srv-domain", "example.com", "-backend", "etcdv3"},
			want: map[string]string{"SRVRecord": "_etcdv3._tcp.example.com.", "Backend": "etcdv3"},
		},
		{
			name:  "srv record wins over nodes",
			files: map[string]string{"confd.toml": "nodes = [\"a:1\"]\n"},
			args:  []string{"-confdir", "$DIR", "-srv-record", "_etcd-client._tcp.example.com"},
			want:  map[string]string{"SRVRecord": "_etcd-client._tcp.example.com", "Nodes": "[]"},
		},
		{
			name: "etcdctl peers when no nodes are given",
			env:  []string{"ETCDCTL_PEERS=10.1.1.1:2379,https://10.1.1.2:2379"},
			args: []string{"-confdir", "$DIR"},
			want: map[string]string{"Nodes": "[http://10.1.1.1:2379 https://10.1.1.2:2379]"},
		},
		{
			name: "etcdctl peers lose to nodes",
			env:  []string{"ETCDCTL_PEERS=10.1.1.1:2379", "CONFD_NODE=10.2.2.2:2379"},
			args: []string{"-confdir", "$DIR"},
			want: map[string]string{"Nodes": "[http://10.2.2.2:2379]"},
		},
		{
			name: "original env spelling of the CA file",
			env:  []string{"CONFD_CLIENT_CAKEYS=/old.pem"},
			args: []string{"-confdir", "$DIR"},
			want: map[string]string{"ClientCAKeys": "/old.pem"},
		},
		{
			name: "canonical env spelling wins",
			env:  []string{"CONFD_CLIENT_CA_KEYS=/new.pem", "CONFD_CLIENT_CAKEYS=/old.pem"},
			args: []string{"-confdir", "$DIR"},
			want: map[string]string{"ClientCAKeys": "/new.pem"},
		},
		{
			name:  "durations as strings or seconds",
			files: map[string]string{"confd.toml": "dial-timeout = \"2s\"\nrequest_timeout = 3\n"},
			env:   []string{"CONFD_COMMAND_TIMEOUT=90"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"DialTimeout": "2s", "RequestTimeout": "3s", "CommandTimeout": "1m30s"},
		},
		{
			name: "file backend with repeated -file",
			args: []string{"-confdir", "$DIR", "-backend", "file", "-file", "a.yaml", "-file", "b,c.yaml"},
			want: map[string]string{"Backend": "file", "Files": "[a.yaml b,c.yaml]"},
		},
		{
			name: "file backend from env",
			env:  []string{"CONFD_BACKEND=file", "CONFD_FILE=a.yaml,b.yaml"},
			args: []string{"-confdir", "$DIR"},
			want: map[string]string{"Backend": "file", "Files": "[a.yaml b.yaml]"},
		},
		{
			name:  "keys ignore case and - versus _",
			files: map[string]string{"confd.toml": "Log_Level = \"debug\"\nSYNC_ONLY = true\nclient-ca-keys = \"/ca\"\n"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"LogLevel": "debug", "SyncOnly": "true", "ClientCAKeys": "/ca"},
		},
		{
			name:  "later environment entry wins",
			env:   []string{"CONFD_PREFIX=/a", "CONFD_PREFIX=/b"},
			args:  []string{"-confdir", "$DIR"},
			want:  map[string]string{"Prefix": "/b"},
			files: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, args, env := setup(t, tt.files, tt.args, tt.env)
			c, _, err := Load(args, env)
			if err != nil {
				t.Fatalf("Load(%q): %v", args, err)
			}
			for name, want := range tt.want {
				want = strings.ReplaceAll(want, "$DIR", dir)
				if got := field(c, name); got != want {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
		})
	}
}

func TestLoadWholeFiles(t *testing.T) {
	tests := []struct {
		file string
		want map[string]string
	}{
		{"original.toml", map[string]string{
			"Backend": "etcdv3", "ClientCert": "/etc/confd/ssl/client.crt", "ClientKey": "/etc/confd/ssl/client.key",
			"ConfDir": "/etc/confd", "LogLevel": "debug", "Interval": "600", "Noop": "false",
			"Prefix": "/production", "Scheme": "https", "SRVDomain": "etcd.example.com",
			// srv_domain makes the nodes come from DNS, as in the original.
			"SRVRecord": "_etcd._tcp.etcd.example.com.", "Nodes": "[]",
		}},
		{"ours.toml", map[string]string{
			"Backend": "etcdv3", "Nodes": "[http://10.0.0.1:2379 http://10.0.0.2:2379 http://10.0.0.3:2379]",
			"Scheme": "http", "ClientCAKeys": "/ca.pem", "ClientCert": "/cert.pem", "ClientKey": "/key.pem",
			"ClientInsecure": "true", "BasicAuth": "true", "Username": "root", "Password": "secret",
			"Prefix": "/app", "Watch": "true", "Interval": "30", "Wait": "2s:10s", "Noop": "true",
			"SyncOnly": "true", "KeepStageFile": "true", "LogLevel": "warn", "LogFormat": "json",
			"CommandTimeout": "1m30s", "DialTimeout": "2s", "RequestTimeout": "3s",
		}},
		{"filebackend.toml", map[string]string{
			"Backend": "file", "Files": "[/etc/confd/data.yaml]", "Filter": "*.yaml", "Nodes": "[]",
		}},
		{"legacy.toml", map[string]string{
			"ConfDir": "/srv/confd", "Interval": "60", "Prefix": "/", "Nodes": "[http://127.0.0.1:4001]", "LogLevel": "info", "SyncOnly": "true",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, _, err := Load([]string{"-config-file", filepath.Join("testdata", tt.file)}, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for name, want := range tt.want {
				if got := field(c, name); got != want {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
		})
	}
}

func TestLoadWarnings(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{
			name: "none",
			args: []string{"-confdir", "$DIR", "-watch", "-node", "a:1"},
		},
		{
			name: "deprecated flags",
			args: []string{"-confdir", "$DIR", "-verbose", "-debug", "-quiet"},
			want: []string{
				"flag -debug is deprecated; use log-level debug",
				"flag -verbose is deprecated; use log-level info",
				"flag -quiet is deprecated; use log-level error",
			},
		},
		{
			name: "flags of other backends",
			args: []string{"-confdir", "$DIR", "-table", "t", "-secret-keyring", "/k"},
			want: []string{
				"flag -table is ignored: it is only used by backends this confd does not support",
				"flag -secret-keyring is ignored: the crypt template functions are not supported",
			},
		},
		{
			name: "onetime and watch",
			args: []string{"-confdir", "$DIR", "-watch", "-onetime"},
			want: []string{"watch is ignored with onetime"},
		},
		{
			name: "credentials without basic auth",
			env:  []string{"CONFD_USERNAME=root"},
			args: []string{"-confdir", "$DIR"},
			want: []string{"username and password are not used without basic-auth"},
		},
		{
			name: "nodes and srv record",
			args: []string{"-confdir", "$DIR", "-node", "a:1", "-srv-record", "_x._tcp.example.com"},
			want: []string{"nodes a:1 are ignored: nodes come from SRV record _x._tcp.example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, args, env := setup(t, nil, tt.args, tt.env)
			_, warnings, err := Load(args, env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(warnings, tt.want) {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, tt.want)
			}
		})
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load([]string{"-confdir", dir, "-password-file", file}, nil)
	if err != nil || c.Password != "s3cret" {
		t.Fatalf("Load = %v, password %q", err, c.Password)
	}
	c, _, err = Load([]string{"-confdir", dir}, []string{"CONFD_PASSWORD_FILE=" + file})
	if err != nil || c.Password != "s3cret" {
		t.Fatalf("from CONFD_PASSWORD_FILE: %v", err)
	}
	if _, _, err := Load([]string{"-confdir", dir, "-password-file", file, "-password", "x"}, nil); !errors.Is(err, ErrUsage) {
		t.Errorf("password and password-file: err = %v, want a usage error", err)
	}
	if _, _, err := Load([]string{"-confdir", dir, "-password-file", filepath.Join(dir, "none")}, nil); err == nil || !strings.Contains(err.Error(), "read password file") {
		t.Errorf("missing file: err = %v", err)
	}
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load([]string{"-confdir", dir, "-password-file", file}, nil); err == nil {
		t.Error("empty first line accepted")
	}
}
