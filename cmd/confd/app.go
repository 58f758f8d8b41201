package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/pkg/config"
	"github.com/etcdconfd/confd/pkg/etcd"
	"github.com/etcdconfd/confd/pkg/filesync"
	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/localkv"
	"github.com/etcdconfd/confd/pkg/metrics"
	"github.com/etcdconfd/confd/pkg/processor"
	"github.com/etcdconfd/confd/pkg/resource"
)

// app is one configuration, wired: the processor and the backend it reads.
type app struct {
	cfg    *config.Config
	log    *logrus.Logger
	proc   *processor.Processor
	poller processor.Poller
	client *etcdClient
	// syncer installs the files; close waits for its background fsyncs.
	syncer *filesync.Syncer
}

// etcdClient is what the daemon needs of an etcd connection.
type etcdClient struct {
	mirror *etcd.Mirror
	close  func()
}

func (a *app) close() {
	if a.syncer != nil {
		a.syncer.Wait()
	}
	if a.client != nil {
		a.client.close()
	}
}

// build loads the resources of cfg and connects to its backend. Broken
// resources are logged and returned as errors; the app runs the others. A
// nil app means nothing can run. With wait, an unreachable etcd is waited
// for until ctx ends. m, when not nil, observes the app.
func build(ctx context.Context, cfg *config.Config, log *logrus.Logger, stdout io.Writer, wait bool, m *metrics.Metrics) (*app, []error) {
	resources, errs := loadResources(cfg, log)
	a := &app{cfg: cfg, log: log}
	procObs, mirrorObs := observers(m)
	switch cfg.Backend {
	case config.BackendEnv:
		environ := os.Environ()
		a.poller = localSource(func(roots []string) (*kv.Snapshot, error) { return localkv.FromEnv(environ, roots), nil })
	case config.BackendFile:
		a.poller = localSource(func(roots []string) (*kv.Snapshot, error) { return localkv.FromFiles(cfg.Files, cfg.Filter, roots) })
	default:
		cli, err := connect(ctx, cfg, log, wait)
		if err != nil {
			if ctx.Err() == nil {
				log.WithError(err).Error("connect to etcd")
			}
			return nil, append(errs, err)
		}
		a.poller = &etcd.Reader{Client: cli, PageSize: etcd.DefaultPageSize, RequestTimeout: cfg.RequestTimeout}
		a.client = &etcdClient{
			mirror: etcd.NewMirror(cli, log, etcd.MirrorOptions{
				RequestTimeout: cfg.RequestTimeout, StaleTimeout: cfg.WatchTimeout, Observer: mirrorObs,
			}),
			close: func() {
				if err := cli.Close(); err != nil {
					log.WithError(err).Debug("close etcd client")
				}
			},
		}
	}
	syncer := filesync.New(log, filesync.Options{
		Noop:           cfg.Noop,
		SyncOnly:       cfg.SyncOnly,
		KeepStageFile:  cfg.KeepStageFile,
		CheckOnly:      cfg.Check,
		CommandTimeout: cfg.CommandTimeout,
	})
	a.syncer = syncer
	proc, perrs := processor.New(log, a.poller, syncer, resources, processor.Options{DiffOut: diffWriter(stdout), Observer: procObs})
	a.proc = proc
	for _, e := range perrs {
		log.WithError(e).Error("skipping resource")
	}
	return a, append(errs, perrs...)
}

// loadResources reads the template resources of cfg, keeps those that
// -resource names (all without it), and logs every problem.
func loadResources(cfg *config.Config, log *logrus.Logger) ([]resource.Resource, []error) {
	resources, warnings, errs := resource.LoadDir(cfg.ConfDir, cfg.Prefix)
	for _, w := range warnings {
		log.Warn(w)
	}
	if len(cfg.Resources) > 0 {
		resources, errs = selectResources(cfg, resources, errs)
	}
	for _, e := range errs {
		log.WithError(e).Error("skipping resource")
	}
	return resources, errs
}

// selectResources keeps the resources that -resource names, and the errors
// of the resource files it names; a name that matches no file is an error.
func selectResources(cfg *config.Config, resources []resource.Resource, errs []error) ([]resource.Resource, []error) {
	wanted := func(name string) bool {
		return slices.Contains(cfg.Resources, name) || slices.Contains(cfg.Resources, strings.TrimSuffix(name, ".toml"))
	}
	var kept []resource.Resource
	seen := map[string]bool{}
	for _, r := range resources {
		if wanted(r.Name) {
			kept = append(kept, r)
			seen[r.Name] = true
		}
	}
	var keptErrs []error
	for _, e := range errs {
		var re *resource.Error
		if !errors.As(e, &re) {
			keptErrs = append(keptErrs, e) // not about one file: conf.d itself
			continue
		}
		if name, err := filepath.Rel(cfg.ResourceDir(), re.File); err == nil && wanted(filepath.ToSlash(name)) {
			keptErrs = append(keptErrs, e)
			seen[filepath.ToSlash(name)] = true
		}
	}
	for _, name := range cfg.Resources {
		if !seen[name] && !seen[name+".toml"] {
			keptErrs = append(keptErrs, fmt.Errorf("-resource %s: no such template resource in %s", name, cfg.ResourceDir()))
		}
	}
	return kept, keptErrs
}

// connect makes the etcd client. With wait, it tries again with a growing
// delay until etcd answers or ctx ends, logging the first failure only.
func connect(ctx context.Context, cfg *config.Config, log *logrus.Logger, wait bool) (*clientv3.Client, error) {
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
	// The same jittered, capped backoff as the etcd mirror's.
	bo := &backoff.ExponentialBackOff{
		InitialInterval: etcd.DefaultMinBackoff, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: etcd.DefaultMaxBackoff,
	}
	bo.Reset()
	for logged := false; ; {
		cli, err := etcd.NewClient(ctx, ecfg, log)
		if err == nil || !wait || ctx.Err() != nil {
			return cli, err
		}
		if !logged {
			log.WithError(err).Warn("etcd unavailable at start, waiting for it")
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(bo.NextBackOff()):
		}
	}
}

// localSource makes a local backend a processor.Poller: it has no cheap
// change probe, so every poll reads it again.
type localSource func(roots []string) (*kv.Snapshot, error)

func (f localSource) Snapshot(_ context.Context, roots []string) (*kv.Snapshot, error) {
	return f(roots)
}

func (f localSource) Changed(context.Context, []string, *kv.Snapshot) (bool, error) { return true, nil }

var (
	_ processor.Watcher = (*etcd.Mirror)(nil)
	_ processor.Poller  = (*etcd.Reader)(nil)
)
