package metrics

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Result label values.
const (
	resultOK    = "ok"
	resultError = "error"
)

// Options tune a Metrics.
type Options struct {
	// StaleAfter is how long etcd may be unavailable before /readyz fails;
	// confd passes its watch timeout. Zero fails at once.
	StaleAfter time.Duration
	// Now returns the current time; nil is time.Now.
	Now func() time.Time
}

// resourceState is what readiness needs of one resource.
type resourceState struct {
	synced  bool   // rendered successfully at least once
	lastErr string // error of the last render, "" after a success
}

// Metrics records the state of confd's resources and of its etcd watch as
// Prometheus metrics, and answers the health endpoints. It is safe for
// concurrent use.
type Metrics struct {
	opts Options

	lastSuccess *prometheus.GaugeVec
	revision    *prometheus.GaugeVec
	renders     *prometheus.CounterVec
	checks      *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	renderTime  *prometheus.HistogramVec
	commandTime *prometheus.HistogramVec
	etcdErrors  prometheus.Counter
	pending     *prometheus.GaugeVec
	etcdUp      prometheus.Gauge
	lastEvent   prometheus.Gauge
	reconnects  prometheus.Counter
	compactions prometheus.Counter

	mu        sync.Mutex
	resources map[string]*resourceState
	order     []string
	watching  bool      // an etcd watch reports its state
	up        bool      // etcd available, when watching
	downSince time.Time // when etcd became unavailable
	downErr   string
}

// New returns a Metrics whose collectors are registered with reg.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{
		opts:      opts,
		resources: map[string]*resourceState{},
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "confd_resource_last_success_timestamp_seconds",
			Help: "Unix time of the last render of the resource that left its file current.",
		}, []string{"resource"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "confd_resource_revision",
			Help: "etcd revision of the keys the resource's file on disk was rendered from.",
		}, []string{"resource"}),
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "confd_renders_total",
			Help: "Renders of the resource, install and commands included, by result (ok or error).",
		}, []string{"resource", "result"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "confd_checks_total",
			Help: "Runs of the resource's check_cmd, by result (ok or error).",
		}, []string{"resource", "result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "confd_reloads_total",
			Help: "Runs of the resource's reload_cmd, by result (ok or error).",
		}, []string{"resource", "result"}),
		renderTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "confd_render_duration_seconds",
			Help:    "Time of one render of the resource, install and commands included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"resource"}),
		commandTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "confd_command_duration_seconds",
			Help:    "Time of one run of the resource's check_cmd or reload_cmd (kind check or reload).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"resource", "kind"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "confd_resource_pending",
			Help: "1 while the resource's file is behind the keys (a change not rendered yet, or a failure to retry), else 0.",
		}, []string{"resource"}),
		etcdUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "confd_etcd_up",
			Help: "1 while the etcd watch is connected, 0 while etcd is unavailable.",
		}),
		lastEvent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "confd_last_event_revision",
			Help: "etcd revision of the latest snapshot of the keys that confd holds.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "confd_watch_reconnects_total",
			Help: "etcd watches set up again after they failed or went silent.",
		}),
		etcdErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "confd_etcd_errors_total",
			Help: "Failed attempts to list or watch the keys in etcd, a watch that went silent included.",
		}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "confd_compactions_total",
			Help: "Re-listings of the keys because etcd compacted the revision the watch needed.",
		}),
	}
	for _, c := range []prometheus.Collector{
		m.lastSuccess, m.revision, m.renders, m.checks, m.reloads, m.renderTime, m.commandTime,
		m.pending, m.etcdUp, m.lastEvent, m.reconnects, m.compactions, m.etcdErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// SetResources sets the resources that readiness waits for. A resource
// that was known before keeps its state; the series of the others are
// dropped.
func (m *Metrics) SetResources(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := map[string]*resourceState{}
	for _, n := range names {
		st := m.resources[n]
		if st == nil {
			st = &resourceState{}
			m.pending.WithLabelValues(n).Set(1)
			for _, r := range []string{resultOK, resultError} {
				m.renders.WithLabelValues(n, r)
			}
		}
		kept[n] = st
	}
	for _, n := range m.order {
		if _, ok := kept[n]; !ok {
			for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
				m.lastSuccess, m.revision, m.renders, m.checks, m.reloads, m.renderTime, m.commandTime, m.pending,
			} {
				v.DeletePartialMatch(prometheus.Labels{"resource": n})
			}
		}
	}
	m.resources, m.order = kept, slices.Clone(names)
}

func result(err error) string {
	if err != nil {
		return resultError
	}
	return resultOK
}

// Rendered records one render of resource from revision rev.
func (m *Metrics) Rendered(resource string, rev int64, d time.Duration, err error) {
	m.renders.WithLabelValues(resource, result(err)).Inc()
	m.renderTime.WithLabelValues(resource).Observe(d.Seconds())
	if err == nil {
		m.revision.WithLabelValues(resource).Set(float64(rev))
		m.lastSuccess.WithLabelValues(resource).Set(float64(m.opts.Now().UnixNano()) / 1e9)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.resources[resource]; st != nil {
		if err == nil {
			st.synced, st.lastErr = true, ""
		} else {
			st.lastErr = err.Error()
		}
	}
}

// Checked records a run of check_cmd that took d.
func (m *Metrics) Checked(resource string, d time.Duration, err error) {
	m.checks.WithLabelValues(resource, result(err)).Inc()
	m.commandTime.WithLabelValues(resource, "check").Observe(d.Seconds())
}

// Reloaded records a run of reload_cmd that took d.
func (m *Metrics) Reloaded(resource string, d time.Duration, err error) {
	m.reloads.WithLabelValues(resource, result(err)).Inc()
	m.commandTime.WithLabelValues(resource, "reload").Observe(d.Seconds())
}

// Failed records a failed attempt to list or watch the keys in etcd.
func (m *Metrics) Failed(error) { m.etcdErrors.Inc() }

// Pending records whether resource's file is behind the keys.
func (m *Metrics) Pending(resource string, pending bool) {
	v := 0.0
	if pending {
		v = 1
	}
	m.pending.WithLabelValues(resource).Set(v)
}

// State records etcd becoming available or unavailable.
func (m *Metrics) State(up bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watching = true
	if up {
		m.etcdUp.Set(1)
		m.up, m.downErr = true, ""
		return
	}
	m.etcdUp.Set(0)
	if m.up || m.downSince.IsZero() {
		m.downSince = m.opts.Now()
	}
	m.up = false
	if err != nil {
		m.downErr = err.Error()
	}
}

// Revision records the revision of the latest snapshot.
func (m *Metrics) Revision(rev int64) { m.lastEvent.Set(float64(rev)) }

// Reconnected counts a watch set up again.
func (m *Metrics) Reconnected() { m.reconnects.Inc() }

// Compacted counts a re-listing after a compaction.
func (m *Metrics) Compacted() { m.compactions.Inc() }

// Ready returns nil when every resource has rendered successfully at least
// once and etcd has not been unavailable longer than StaleAfter; otherwise
// an error that says what is behind and why.
func (m *Metrics) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var problems []string
	if m.watching && !m.up {
		if down := m.opts.Now().Sub(m.downSince); down >= m.opts.StaleAfter {
			problems = append(problems, fmt.Sprintf("etcd watch: unavailable for %s: %s", down.Round(time.Second), m.downErr))
		}
	}
	for _, n := range m.order {
		st := m.resources[n]
		switch {
		case st.synced:
		case st.lastErr != "":
			problems = append(problems, fmt.Sprintf("resource %s: never synced: %s", n, st.lastErr))
		default:
			problems = append(problems, fmt.Sprintf("resource %s: never synced: not rendered yet", n))
		}
	}
	if len(problems) > 0 {
		return &NotReadyError{Problems: problems}
	}
	return nil
}

// NotReadyError lists why confd is not ready, one problem a line.
type NotReadyError struct {
	Problems []string
}

func (e *NotReadyError) Error() string { return "not ready: " + strings.Join(e.Problems, "; ") }

// Handler serves /metrics from gatherer (the registry m is registered
// with), /healthz and /readyz.
func (m *Metrics) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		err := m.Ready()
		if err == nil {
			_, _ = fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "not ready")
		if ne, ok := err.(*NotReadyError); ok {
			for _, p := range ne.Problems {
				_, _ = fmt.Fprintln(w, p)
			}
		}
	})
	return mux
}
