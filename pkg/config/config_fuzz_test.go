package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoadFile loads arbitrary bytes as <confdir>/confd.toml. Load must not
// panic and must give the same answer twice. An error is either a
// *FileError about that file, with a line inside it, or a usage error, never
// both; a loaded configuration is valid, normalised, and keeps the confdir
// of the command line.
func FuzzLoadFile(f *testing.F) {
	for _, name := range []string{"original.toml", "ours.toml", "legacy.toml", "filebackend.toml", "duplicate.toml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// The fuzz function runs one input at a time in each process, so the
	// directory is shared by every input.
	dir := f.TempDir()
	file := filepath.Join(dir, configFileName)
	args := []string{"-confdir", dir}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, warnings, err := Load(args, nil)
		c2, warnings2, err2 := Load(args, nil)
		if !reflect.DeepEqual(c, c2) || !reflect.DeepEqual(warnings, warnings2) || errText(err) != errText(err2) {
			t.Fatalf("Load is not deterministic:\nfirst:  %+v %q %v\nsecond: %+v %q %v", c, warnings, err, c2, warnings2, err2)
		}
		for _, w := range warnings {
			if strings.TrimSpace(w) == "" {
				t.Errorf("empty warning in %q", warnings)
			}
		}
		if err != nil {
			if c != nil {
				t.Errorf("Load returned a config with error %v", err)
			}
			var fe *FileError
			isFile, isUsage := errors.As(err, &fe), errors.Is(err, ErrUsage)
			switch {
			case isFile && isUsage:
				t.Errorf("error %v is both a file error and a usage error", err)
			case isFile:
				lines := strings.Count(string(data), "\n") + 1
				if fe.Path != file || fe.Line < 0 || fe.Line > lines || fe.Msg == "" {
					t.Errorf("file error {%q %d %q}, want path %q and a line in 0..%d", fe.Path, fe.Line, fe.Msg, file, lines)
				}
			case !isUsage:
				t.Errorf("error %v (%T) is neither a *FileError nor a usage error", err, err)
			}
			return
		}
		checkConfig(t, c, dir, file)
	})
}

// checkConfig checks what Load promises about a configuration it returns.
func checkConfig(t *testing.T, c *Config, dir, file string) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Errorf("loaded config does not validate: %v", err)
	}
	if c.ConfDir != dir || c.ConfigFile != file {
		t.Errorf("ConfDir, ConfigFile = %q, %q, want %q, %q: the file must not move them", c.ConfDir, c.ConfigFile, dir, file)
	}
	switch c.Backend {
	case BackendEtcd:
		if c.Scheme != "http" && c.Scheme != "https" {
			t.Errorf("Scheme = %q", c.Scheme)
		}
		if (c.SRVRecord == "") == (len(c.Nodes) == 0) {
			t.Errorf("SRVRecord %q with nodes %q: want exactly one of them", c.SRVRecord, c.Nodes)
		}
		for _, n := range c.Nodes {
			if !strings.HasPrefix(n, "http://") && !strings.HasPrefix(n, "https://") {
				t.Errorf("node %q is not an http(s) URL", n)
			}
		}
	case BackendEnv, BackendFile:
	default:
		t.Errorf("Backend = %q, want a canonical backend name", c.Backend)
	}
	if c.LogLevel != strings.ToLower(c.LogLevel) || c.LogFormat != strings.ToLower(c.LogFormat) {
		t.Errorf("LogLevel, LogFormat = %q, %q, want lower case", c.LogLevel, c.LogFormat)
	}
	if _, _, err := ParseWait(c.Wait); err != nil {
		t.Errorf("Wait %q: %v", c.Wait, err)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
