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
	"github.com/etcdconfd/confd/pkg/filesync"
	"github.com/etcdconfd/confd/pkg/processor"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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

// run is confd without the process around it: it parses args, runs the
// chosen mode until it is done or ctx ends, and returns the exit code.
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
	if cfg.Watch && cfg.Backend != config.BackendEtcd && !cfg.Onetime {
		log.Errorf("-watch needs the etcd backend; with -backend %s use -interval", cfg.Backend)
		return exitUsage
	}
	if cfg.CheckConfig {
		return checkConfig(cfg, log, stdout)
	}
	if cfg.Onetime || cfg.Check {
		return onetime(ctx, cfg, log, stdout)
	}
	return daemon(ctx, args, cfg, log, stdout)
}

// oneShotGCPercent is the garbage collector's GOGC for a one-shot run,
// unless the environment sets one. Nearly all that such a run allocates
// is the snapshot it reads, live until the process exits: the default
// collector marks that again and again to free little (at 100,000 keys,
// four collections that each found 1–2 MB to free), and a higher value
// saves them at little cost in memory (see docs/performance.md).
const oneShotGCPercent = 400

// oneShotGC sets the collector's GOGC for a one-shot run unless the
// environment sets one, and returns what puts the previous value back.
func oneShotGC() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	prev := debug.SetGCPercent(oneShotGCPercent)
	return func() { debug.SetGCPercent(prev) }
}

// onetime renders every resource once.
func onetime(ctx context.Context, cfg *config.Config, log *logrus.Logger, stdout io.Writer) int {
	defer oneShotGC()()
	a, errs := build(ctx, cfg, log, stdout, false, nil)
	if a == nil {
		return exitFailure
	}
	defer a.close()
	if err := a.proc.Once(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return exitFailure
	}
	return exitOK
}

// checkConfig loads every resource and parses every template, reports each
// problem, and touches nothing.
func checkConfig(cfg *config.Config, log *logrus.Logger, stdout io.Writer) int {
	resources, errs := loadResources(cfg, log)
	for _, r := range resources {
		for _, cmd := range []string{r.CheckCmd, r.ReloadCmd} {
			if err := filesync.ValidateCommand(cmd); err != nil {
				errs = append(errs, fmt.Errorf("resource %s: %w", r.Name, err))
				log.WithError(err).WithField("resource", r.Name).Error("bad command")
			}
		}
	}
	_, perrs := processor.New(log, nil, nil, resources, processor.Options{})
	for _, e := range perrs {
		log.WithError(e).Error("skipping resource")
	}
	errs = append(errs, perrs...)
	if len(errs) > 0 {
		fmt.Fprintf(stdout, "%d problem(s) in %s\n", len(errs), cfg.ConfDir)
		return exitFailure
	}
	fmt.Fprintf(stdout, "configuration OK: %d template resource(s) in %s\n", len(resources), cfg.ConfDir)
	return exitOK
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

// versionString is the version the build was given and, when the build
// recorded it (go build without -buildvcs=false), the commit it was built
// from.
func versionString() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return fmt.Sprintf("confd %s (commit %s, %s)", version, s.Value, runtime.Version())
			}
		}
	}
	return fmt.Sprintf("confd %s (%s)", version, runtime.Version())
}
