// Package metrics serves how confd is doing: Prometheus metrics at
// /metrics, liveness at /healthz and readiness at /readyz.
//
// A Metrics is built in main on a registry of its own (never the global
// one) and handed to the processor and the etcd mirror, whose small
// observer interfaces it satisfies; Handler serves it over HTTP.
//
// It may import the standard library and
// github.com/prometheus/client_golang.
package metrics
