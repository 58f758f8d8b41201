package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"

	"github.com/etcdconfd/confd/pkg/config"
	"github.com/etcdconfd/confd/pkg/metrics"
	"github.com/etcdconfd/confd/pkg/processor"
)

// daemon runs the watch or interval mode until ctx ends. SIGHUP loads the
// configuration, resources and templates again; a new configuration with any
// error is rejected and the running one goes on. Under systemd it reports
// readiness, reloads and stopping, and pings the watchdog (see systemd.go).
func daemon(ctx context.Context, args []string, cfg *config.Config, log *logrus.Logger, stdout io.Writer) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	sd := notifier{log: log}
	// The watchdog outlives ctx, so that a sync finishing after SIGTERM is
	// not cut short by a missed ping.
	wdCtx, stopWatchdog := context.WithCancel(context.WithoutCancel(ctx))
	waitWatchdog := sd.watchdog(wdCtx)
	defer func() {
		stopWatchdog()
		waitWatchdog()
	}()

	mctx, stopMetrics := context.WithCancel(ctx)
	m, waitMetrics, err := startMetrics(mctx, cfg, log)
	if err != nil {
		stopMetrics()
		log.WithError(err).Error("start metrics")
		return exitFailure
	}
	defer func() {
		stopMetrics()
		waitMetrics()
	}()

	cur, _ := build(ctx, cfg, log, stdout, true, m)
	if cur == nil {
		if ctx.Err() != nil {
			sd.notify(sddaemon.SdNotifyStopping)
			return exitOK
		}
		return exitFailure
	}
	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		ready := func() {
			if runCtx.Err() == nil {
				sd.notify(sddaemon.SdNotifyReady)
			}
		}
		if m != nil {
			m.SetResources(cur.proc.Names())
		}
		go func() { done <- cur.run(runCtx, ready) }()
		cur.log.WithFields(logrus.Fields{
			"mode": cur.mode(), "resources": cur.proc.Len(), "version": version, "backend": cur.cfg.Backend,
		}).Info("started")

		next := (*app)(nil)
		for next == nil {
			select {
			case <-ctx.Done():
				sd.notify(sddaemon.SdNotifyStopping)
				cancel()
				<-done
				cur.close()
				cur.log.Info("stopped")
				return exitOK
			case err := <-done:
				sd.notify(sddaemon.SdNotifyStopping)
				cancel()
				cur.close()
				cur.log.WithError(err).Error("stopped")
				return exitFailure
			case <-hup:
				sd.notify(sddaemon.SdNotifyReloading)
				if next = reload(ctx, args, cur.log, stdout, m); next == nil {
					// The running configuration goes on, ready as it was.
					sd.notify(sddaemon.SdNotifyReady)
				}
			}
		}
		cancel()
		<-done
		cur.close()
		cur = next
		sd.log = cur.log
	}
}

// reload builds the app of the configuration on disk now, or returns nil
// when it has any error.
func reload(ctx context.Context, args []string, log *logrus.Logger, stdout io.Writer, m *metrics.Metrics) *app {
	log.Info("SIGHUP: loading the configuration again")
	cfg, warnings, err := config.Load(args, os.Environ())
	if err != nil {
		log.WithError(err).Error("new configuration rejected, keeping the running one")
		return nil
	}
	nlog, err := newLogger(cfg, log.Out)
	if err != nil {
		log.WithError(err).Error("new configuration rejected, keeping the running one")
		return nil
	}
	for _, w := range warnings {
		nlog.Warn(w)
	}
	bctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.RequestTimeout)
	defer cancel()
	a, errs := build(bctx, cfg, nlog, stdout, false, m)
	if a == nil || len(errs) > 0 {
		if a != nil {
			a.close()
		}
		log.WithField("errors", len(errs)).Error("new configuration rejected, keeping the running one")
		return nil
	}
	return a
}

// mode names what run does.
func (a *app) mode() string {
	if a.cfg.Watch && a.client != nil {
		return "watch"
	}
	return "interval"
}

// run runs the app's mode until ctx ends; it calls ready once every
// resource has had its first render attempt.
func (a *app) run(ctx context.Context, ready func()) error {
	opts := processor.DaemonOptions{
		Interval: time.Duration(a.cfg.Interval) * time.Second,
		Grace:    a.cfg.CommandTimeout,
		Ready:    ready,
	}
	if a.cfg.Wait != "" {
		var err error
		if opts.WaitMin, opts.WaitMax, err = config.ParseWait(a.cfg.Wait); err != nil {
			return err
		}
	}
	if a.mode() == "watch" {
		return a.proc.Watch(ctx, a.client.mirror, opts)
	}
	return a.proc.Poll(ctx, a.poller, opts)
}
