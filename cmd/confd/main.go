// Command confd keeps configuration files in step with keys in etcd: it
// renders templates from template resources, checks the result, installs it
// atomically and reloads the service that reads it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/etcdconfd/confd/pkg/config"
	"github.com/etcdconfd/confd/pkg/etcd"
	"github.com/etcdconfd/confd/pkg/filesync"
	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/localkv"
	"github.com/etcdconfd/confd/pkg/processor"
	"github.com/etcdconfd/confd/pkg/resource"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// pageSize is the number of keys fetched from etcd per request.
const pageSize = 10000

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, warnings, err := config.Load(args, os.Environ())
	switch {
	case errors.Is(err, flag.ErrHelp):
		config.Usage(stdout)
		return exitOK
	case errors.Is(err, config.ErrUsage):
		fmt.Fprintf(stderr, "confd: %v\nRun 'confd -h' for the flags.\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "confd: %v\n", err)
		return exitFailure
	}
	if cfg.Version {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "confd: %v\n", err)
		return exitUsage
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	if !cfg.Onetime {
		log.Error("daemon modes (-watch, -interval) are not available in this version; run with -onetime")
		return exitUsage
	}

	resources, warnings, errs := resource.LoadDir(cfg.ConfDir, cfg.Prefix)
	for _, w := range warnings {
		log.Warn(w)
	}
	for _, e := range errs {
		log.WithError(e).Error("skipping resource")
	}

	src, closeSrc, err := newSource(ctx, cfg, log)
	if err != nil {
		log.WithError(err).Error("connect to backend")
		return exitFailure
	}
	defer closeSrc()

	syncer := filesync.New(log, filesync.Options{
		Noop:           cfg.Noop,
		SyncOnly:       cfg.SyncOnly,
		KeepStageFile:  cfg.KeepStageFile,
		CommandTimeout: cfg.CommandTimeout,
	})
	proc, perrs := processor.New(log, src, syncer, resources, processor.Options{DiffOut: stdout})
	for _, e := range perrs {
		log.WithError(e).Error("skipping resource")
	}
	errs = append(errs, perrs...)

	if err := proc.Once(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return exitFailure
	}
	return exitOK
}

// newSource returns the backend that snapshots keys, and a function that
// releases it.
func newSource(ctx context.Context, cfg *config.Config, log *logrus.Logger) (processor.Source, func(), error) {
	switch cfg.Backend {
	case config.BackendEnv:
		environ := os.Environ()
		return processor.SourceFunc(func(_ context.Context, roots []string) (*kv.Snapshot, error) {
			return localkv.FromEnv(environ, roots), nil
		}), func() {}, nil
	case config.BackendFile:
		return processor.SourceFunc(func(_ context.Context, roots []string) (*kv.Snapshot, error) {
			return localkv.FromFiles(cfg.Files, roots)
		}), func() {}, nil
	}
	ecfg := etcd.Config{
		Endpoints:      cfg.Nodes,
		SRVDomain:      cfg.SRVDomain,
		SRVRecord:      cfg.SRVRecord,
		Scheme:         cfg.Scheme,
		CertFile:       cfg.ClientCert,
		KeyFile:        cfg.ClientKey,
		CAFile:         cfg.ClientCAKeys,
		Insecure:       cfg.ClientInsecure,
		DialTimeout:    cfg.DialTimeout,
		RequestTimeout: cfg.RequestTimeout,
	}
	if cfg.BasicAuth {
		ecfg.Username, ecfg.Password = cfg.Username, cfg.Password
	}
	cli, err := etcd.NewClient(ctx, ecfg, log)
	if err != nil {
		return nil, nil, err
	}
	src := processor.SourceFunc(func(ctx context.Context, roots []string) (*kv.Snapshot, error) {
		ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		defer cancel()
		return etcd.ReadPrefixes(ctx, cli, roots, pageSize)
	})
	return src, func() {
		if err := cli.Close(); err != nil {
			log.WithError(err).Debug("close etcd client")
		}
	}, nil
}

func newLogger(cfg *config.Config, out io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(out)
	level, err := logrus.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("parse log level: %w", err)
	}
	log.SetLevel(level)
	if cfg.LogFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	return log, nil
}

func versionString() string {
	commit := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	return fmt.Sprintf("confd %s (commit %s, %s)", version, commit, runtime.Version())
}
