package main

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/etcdconfd/confd/pkg/config"
	"github.com/etcdconfd/confd/pkg/etcd"
	"github.com/etcdconfd/confd/pkg/metrics"
	"github.com/etcdconfd/confd/pkg/processor"
)

// startMetrics serves the metrics and health endpoints on cfg.MetricsAddr
// until ctx ends, and returns the metrics and a function that waits for
// the server to stop. Without an address it returns a nil Metrics.
func startMetrics(ctx context.Context, cfg *config.Config, log *logrus.Logger) (*metrics.Metrics, func(), error) {
	if cfg.MetricsAddr == "" {
		return nil, func() {}, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg, metrics.Options{StaleAfter: cfg.WatchTimeout})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("-metrics-addr: %w", err)
	}
	log.WithField("addr", ln.Addr().String()).Info("serving metrics")
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := metrics.Serve(ctx, ln, m.Handler(reg)); err != nil {
			log.WithError(err).Error("metrics server stopped")
		}
	})
	return m, wg.Wait, nil
}

// observers returns what the processor and the etcd mirror report to: m,
// or nobody when m is nil.
func observers(m *metrics.Metrics) (processor.Observer, etcd.MirrorObserver) {
	if m == nil {
		return nil, nil
	}
	return m, m
}
