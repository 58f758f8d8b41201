package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

type bench struct {
	ctx      context.Context
	o        options
	tmp      string
	cli      *clientv3.Client
	endpoint string
	metrics  string
	log      io.Writer
	// cur is the keyspace etcd holds now, kept up to date by every change
	// the benchmark makes, so that a size is loaded once.
	cur *keyspace
	waiter
}

// templates are the one-shot figures' templates: (a) the HAProxy template,
// (b) nested lookups, (c) a directory template.
var templates = []template{
	{"haproxy", "{{range gets \"/app/servers/*\"}}server {{base .Key}} {{.Value}} check\n{{end}}"},
	{"nested", "{{range ls \"/app/servers\"}}{{getv (printf \"/app/servers/%s\" .)}}\n{{end}}"},
	{"directory", "{{range lsdir \"/svc\"}}backend {{.}}\n{{range gets (printf \"/svc/%s/*\" .)}}  server {{base .Key}} {{.Value}}\n{{end}}{{end}}"},
}

// template is a template of the one-shot figures.
type template struct{ name, text string }

// keyspace is the generated keys of one size.
type keyspace struct {
	n       int
	servers map[string]string // name -> value under /app/servers
	svc     map[string]map[string]string
}

func serverValue(i int) string {
	return fmt.Sprintf("10.%d.%d.%d:%d", i>>16&255, i>>8&255, i&255, 8000+i%1000)
}

// serverName is the name of the key of index i under /app/servers.
func serverName(i int) string { return fmt.Sprintf("srv-%d", i) }

// svcKey is the directory and name of the key of index i under /svc.
func svcKey(i int) (dir, name string) {
	return fmt.Sprintf("s%d", i%100), strconv.Itoa(i / 100)
}

func makeKeyspace(n int) keyspace {
	ks := keyspace{n: n, servers: make(map[string]string, n), svc: map[string]map[string]string{}}
	for i := 0; i < n; i++ {
		ks.servers[serverName(i)] = serverValue(i)
		dir, name := svcKey(i)
		if ks.svc[dir] == nil {
			ks.svc[dir] = map[string]string{}
		}
		ks.svc[dir][name] = serverValue(i)
	}
	return ks
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// expected renders a template the way confd must.
func (ks keyspace) expected(name string) string {
	var b strings.Builder
	switch name {
	case "haproxy":
		for _, k := range sortedKeys(ks.servers) {
			fmt.Fprintf(&b, "server %s %s check\n", k, ks.servers[k])
		}
	case "nested":
		for _, k := range sortedKeys(ks.servers) {
			fmt.Fprintf(&b, "%s\n", ks.servers[k])
		}
	case "directory":
		for _, d := range sortedKeys(ks.svc) {
			fmt.Fprintf(&b, "backend %s\n", d)
			for _, k := range sortedKeys(ks.svc[d]) {
				fmt.Fprintf(&b, "  server %s %s\n", k, ks.svc[d][k])
			}
		}
	}
	return b.String()
}

// keyspace returns the keyspace of size n, loading it into etcd unless etcd
// holds it already.
func (b *bench) keyspace(n int) (keyspace, error) {
	if b.cur != nil && b.cur.n == n {
		return *b.cur, nil
	}
	ks := makeKeyspace(n)
	fmt.Fprintf(b.log, "loading %d keys\n", 2*n)
	b.cur = nil
	if err := b.load(ks); err != nil {
		return ks, err
	}
	b.cur = &ks
	return ks, nil
}

// load replaces the keys under /app and /svc with ks.
func (b *bench) load(ks keyspace) error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	for _, p := range []string{"/app/", "/svc/"} {
		if _, err := b.cli.Delete(ctx, p, clientv3.WithPrefix()); err != nil {
			return fmt.Errorf("clear %s: %w", p, err)
		}
	}
	ops := loadOps(ks, b.o.loadOrder)
	const batch = 100 // below etcd's default limit of 128 operations a transaction
	for i := 0; i < len(ops); i += batch {
		if _, err := b.cli.Txn(ctx).Then(ops[i:min(i+batch, len(ops))]...).Commit(); err != nil {
			return fmt.Errorf("load keys: %w", err)
		}
	}
	return nil
}

// Orders in which load puts the keys. etcd stores each key's value under
// the revision that wrote it and a range reads them in the order of their
// keys, so its cost depends on how far from each other in its file the
// values of neighbouring keys lie.
const (
	// orderIndex puts the keys in the order of their numbers, as a
	// registry does that gains one server after another: srv-0, srv-1,
	// srv-2 and so on, then /svc/s0/0, /svc/s0/1, … /svc/s1/0 and so on,
	// one directory after the other. Both ranges then lie alike in etcd's
	// file (srv-1000 lies 900 puts after srv-100, which precedes it in a
	// range, and /svc/s0/100 90 puts after /svc/s0/10), so that the
	// templates over them can be compared.
	orderIndex = "index"
	// orderRandom puts the keys of /app/servers, then those of /svc, in
	// orders shuffled with a fixed seed.
	orderRandom = "random"
)

// loadOps returns the puts of ks in order: /app/servers first, then /svc,
// each in the order of the numbers of its keys or shuffled.
func loadOps(ks keyspace, order string) []clientv3.Op {
	ops := make([]clientv3.Op, 0, 2*ks.n)
	for i := range ks.n {
		name := serverName(i)
		ops = append(ops, clientv3.OpPut("/app/servers/"+name, ks.servers[name]))
	}
	// svcKey(i) is directory i mod 100, key i div 100.
	for d := range min(ks.n, 100) {
		for i := d; i < ks.n; i += 100 {
			dir, name := svcKey(i)
			ops = append(ops, clientv3.OpPut("/svc/"+dir+"/"+name, ks.svc[dir][name]))
		}
	}
	if order == orderRandom {
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(ks.n, func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		rest := ops[ks.n:]
		r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	}
	return ops
}

// confdir writes a confdir with one resource rendering text to dest.
func (b *bench) confdir(name, text string) (dir, dest string, err error) {
	return b.confdirWith(name, text, "")
}

// confdirWith is confdir with more lines (such as reload_cmd) in the
// resource.
func (b *bench) confdirWith(name, text, extra string) (dir, dest string, err error) {
	dir = filepath.Join(b.tmp, "confdir-"+name)
	for _, sub := range []string{"conf.d", "templates", "out"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", "", err
		}
	}
	dest = filepath.Join(dir, "out", name+".out")
	keys := `["/app/servers"]`
	if name == "directory" {
		keys = `["/svc"]`
	}
	res := fmt.Sprintf("[template]\nsrc = %q\ndest = %q\nkeys = %s\n%s", name+".tmpl", dest, keys, extra)
	if err := os.WriteFile(filepath.Join(dir, "conf.d", name+".toml"), []byte(res), 0o644); err != nil {
		return "", "", err
	}
	return dir, dest, os.WriteFile(filepath.Join(dir, "templates", name+".tmpl"), []byte(text), 0o644)
}

type oneShotResult struct {
	Keys     int     `json:"keys"`
	Template string  `json:"template"`
	WallMS   stats   `json:"wall_ms"`
	CPUMS    stats   `json:"cpu_ms"`
	RSSMB    stats   `json:"peak_rss_mb"`
	Bytes    int     `json:"bytes"`
	Ratio    float64 `json:"wall_ratio_to_haproxy"`
}

// stats are the median, minimum and maximum of several runs.
type stats struct {
	Median, Min, Max float64
}

func summarize(xs []float64) stats {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return stats{Median: s[len(s)/2], Min: s[0], Max: s[len(s)-1]}
}

// oneShot runs the one-shot figures. At each size the templates take
// turns, one run each per round, and a template's ratio to the HAProxy
// template is the median of the ratios within a round: on a host whose
// speed changes within minutes, runs of the two compared next to each
// other see the same machine.
func (b *bench) oneShot() ([]oneShotResult, error) {
	var out []oneShotResult
	for _, n := range b.o.sizes {
		ks, err := b.keyspace(n)
		if err != nil {
			return nil, err
		}
		runs, err := b.oneShotRounds(ks, templates)
		if err != nil {
			return nil, err
		}
		for i, tpl := range templates {
			rs := runs[i]
			ratios := make([]float64, len(rs.wall))
			for r := range rs.wall {
				ratios[r] = rs.wall[r] / runs[0].wall[r]
			}
			res := oneShotResult{
				Keys: n, Template: tpl.name, Bytes: len(rs.want),
				WallMS: summarize(rs.wall), CPUMS: summarize(rs.cpu), RSSMB: summarize(rs.rss),
				Ratio: summarize(ratios).Median,
			}
			out = append(out, res)
			fmt.Fprintf(b.log, "one-shot %-9s %7d keys: %.1f ms\n", tpl.name, n, res.WallMS.Median)
		}
	}
	return out, nil
}

// oneShotRuns are the confdir of a one-shot figure, the render it must
// give, and what its runs measured.
type oneShotRuns struct {
	name, dir, dest string
	want            string
	wall, cpu, rss  []float64
}

// oneShotRounds runs confd -onetime b.o.runs times with each of tpls on
// ks, the templates taking turns, one run each per round.
func (b *bench) oneShotRounds(ks keyspace, tpls []template) ([]oneShotRuns, error) {
	runs := make([]oneShotRuns, len(tpls))
	for i, tpl := range tpls {
		rs := &runs[i]
		rs.name, rs.want = tpl.name, ks.expected(tpl.name)
		var err error
		if rs.dir, rs.dest, err = b.confdir(tpl.name, tpl.text); err != nil {
			return nil, err
		}
	}
	for r := 0; r < b.o.runs; r++ {
		for i := range runs {
			if err := b.oneShotRun(ks.n, &runs[i]); err != nil {
				return nil, err
			}
		}
	}
	return runs, nil
}

// oneShotRun runs confd -onetime once in runs' confdir, checks every
// output byte for byte and adds what it measured to runs.
func (b *bench) oneShotRun(keys int, runs *oneShotRuns) error {
	os.Remove(runs.dest)
	cmd := b.confdCommand(b.ctx, "-onetime", "-node", b.endpoint, "-confdir", runs.dir, "-log-level", "warn")
	cmd.Stderr = b.log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	wall := float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		return fmt.Errorf("one-shot %s at %d keys: %w", runs.name, keys, err)
	}
	st := cmd.ProcessState
	runs.wall = append(runs.wall, wall)
	runs.cpu = append(runs.cpu, float64((st.UserTime()+st.SystemTime()).Microseconds())/1000)
	runs.rss = append(runs.rss, float64(<-peak)/1024)
	got, err := os.ReadFile(runs.dest)
	if err != nil {
		return err
	}
	if string(got) != runs.want {
		return fmt.Errorf("one-shot %s at %d keys: the file differs from the expected render", runs.name, keys)
	}
	return nil
}

type watchResult struct {
	Keys    int     `json:"keys"`
	Changes int     `json:"changes"`
	P50MS   float64 `json:"p50_ms"`
	P90MS   float64 `json:"p90_ms"`
	P99MS   float64 `json:"p99_ms"`
	MaxMS   float64 `json:"max_ms"`
	// MeanMS shows what the quantiles hide when a change's cost moves
	// from most changes to a few.
	MeanMS float64 `json:"mean_ms"`
	// DiskFlushesPerChange, DiskWritesPerChange and
	// DiskDiscardsPerChange count what the disk that holds the files (and
	// here etcd's data too) was asked to do per change, less what a put
	// alone asks; nil where that disk has no counters (no block device,
	// or a kernel without flush counts). They count every process's I/O
	// on that disk, etcd's backend commits included. Discards come from
	// freeing blocks on a disk mounted with discard.
	DiskFlushesPerChange  *float64 `json:"disk_flushes_per_change,omitempty"`
	DiskWritesPerChange   *float64 `json:"disk_writes_per_change,omitempty"`
	DiskDiscardsPerChange *float64 `json:"disk_discards_per_change,omitempty"`
	// PutP50MS is the median time of a put alone (etcd's commit, without
	// confd), measured just before: the floor of the figures above.
	PutP50MS          float64 `json:"etcd_put_p50_ms"`
	BytesPerChange    float64 `json:"etcd_bytes_per_change"`
	RequestsPerChange float64 `json:"etcd_requests_per_change"`
}

func (b *bench) watch() ([]watchResult, error) {
	var out []watchResult
	for _, n := range b.o.watch {
		ks, err := b.keyspace(n)
		if err != nil {
			return nil, err
		}
		r, err := b.watchOne(n, ks)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (b *bench) watchOne(n int, ks keyspace) (watchResult, error) {
	res := watchResult{Keys: n, Changes: b.o.changes}
	dir, dest, err := b.confdir("haproxy", templates[0].text)
	if err != nil {
		return res, err
	}
	os.Remove(dest)

	// What the puts themselves cost in etcd traffic, without confd.
	before, err := b.scrape()
	if err != nil {
		return res, err
	}
	files := filepath.Dir(dest)
	diskBefore := readDisk(files)
	puts := make([]float64, 0, b.o.changes)
	for i := 0; i < b.o.changes; i++ {
		start := time.Now()
		if _, err := b.cli.Put(b.ctx, "/bench/baseline", strconv.Itoa(i)); err != nil {
			return res, err
		}
		puts = append(puts, float64(time.Since(start).Microseconds())/1000)
	}
	sort.Float64s(puts)
	res.PutP50MS = puts[len(puts)/2]
	after, err := b.scrape()
	if err != nil {
		return res, err
	}
	basePerPut := (after.sentBytes - before.sentBytes) / float64(b.o.changes)
	baseReqs := (after.requests - before.requests) / float64(b.o.changes)
	baseDisk := readDisk(files).minus(diskBefore)

	ctx, cancel := context.WithCancel(b.ctx)
	cmd := b.confdCommand(ctx, "-watch", "-node", b.endpoint, "-confdir", dir, "-log-level", "warn")
	cmd.Stderr = b.log
	if err := cmd.Start(); err != nil {
		cancel()
		return res, err
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	if err := b.waitFor(dest, 60*time.Second, func(s string) bool { return s == ks.expected("haproxy") }); err != nil {
		return res, fmt.Errorf("first render at %d keys: %w", n, err)
	}

	before, err = b.scrape()
	if err != nil {
		return res, err
	}
	diskBefore = readDisk(files)
	var lat []float64
	for c := 0; c < b.o.changes; c++ {
		name := serverName((c * 7919) % n)
		val := fmt.Sprintf("10.255.%d.%d:%d", c>>8&255, c&255, 9000+c)
		ks.servers[name] = val
		line := fmt.Sprintf("server %s %s check\n", name, val)
		start := time.Now()
		if _, err := b.cli.Put(b.ctx, "/app/servers/"+name, val); err != nil {
			return res, err
		}
		if err := b.waitFor(dest, 10*time.Second, func(s string) bool { return strings.Contains(s, line) }); err != nil {
			return res, fmt.Errorf("change %d at %d keys: %w", c, n, err)
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	after, err = b.scrape()
	if err != nil {
		return res, err
	}
	if d := readDisk(files).minus(diskBefore).minus(baseDisk); d != nil {
		per := float64(b.o.changes)
		flushes, writes, discards := d.flushes/per, d.writes/per, d.discards/per
		res.DiskFlushesPerChange, res.DiskWritesPerChange, res.DiskDiscardsPerChange = &flushes, &writes, &discards
	}
	if got, err := os.ReadFile(dest); err != nil || string(got) != ks.expected("haproxy") {
		return res, fmt.Errorf("final file at %d keys differs from the expected render", n)
	}
	sort.Float64s(lat)
	q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	res.P50MS, res.P90MS, res.P99MS, res.MaxMS = q(0.5), q(0.9), q(0.99), lat[len(lat)-1]
	for _, l := range lat {
		res.MeanMS += l / float64(len(lat))
	}
	res.BytesPerChange = (after.sentBytes-before.sentBytes)/float64(b.o.changes) - basePerPut
	res.RequestsPerChange = (after.requests-before.requests)/float64(b.o.changes) - baseReqs
	fmt.Fprintf(b.log, "watch %7d keys: p50 %.2f ms, p99 %.2f ms, %.0f bytes/change\n", n, res.P50MS, res.P99MS, res.BytesPerChange)
	return res, nil
}

// waiter waits for files to reach an expected content. It reads a file
// only when a stat shows it replaced or changed, so that waiting on a
// large file does not compete with confd. inotify on the file's
// directory wakes it at once when a file is renamed into it or written
// there; without inotify it polls. A poll with time.Sleep would add its
// granularity (about a millisecond here, for any shorter sleep) to every
// latency measured. One inotify instance per directory serves every wait
// until close: closing one takes the kernel several milliseconds. A
// waiter is not safe for concurrent use.
type waiter struct {
	dirs map[string]*os.File // nil where inotify failed
}

// waitFor waits until ok accepts the content of path, for at most timeout.
func (w *waiter) waitFor(path string, timeout time.Duration, ok func(string) bool) error {
	deadline := time.Now().Add(timeout)
	dir := filepath.Dir(path)
	events, seen := w.dirs[dir]
	if !seen {
		if w.dirs == nil {
			w.dirs = map[string]*os.File{}
		}
		events = watchDir(dir)
		w.dirs[dir] = events
	}
	buf := make([]byte, 64<<10)
	var last os.FileInfo
	for time.Now().Before(deadline) {
		fi, err := os.Stat(path)
		if err == nil && (last == nil || !os.SameFile(fi, last) || fi.ModTime() != last.ModTime() || fi.Size() != last.Size()) {
			last = fi
			if b, err := os.ReadFile(path); err == nil && ok(string(b)) {
				return nil
			}
		}
		if events == nil {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		// Events queued before this wait only make it look again. It
		// wakes up now and then without one too, in case one was lost
		// (the queue of inotify is bounded).
		wake := time.Now().Add(20 * time.Millisecond)
		if wake.After(deadline) {
			wake = deadline
		}
		_ = events.SetReadDeadline(wake)
		if _, err := events.Read(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			events.Close()
			events, w.dirs[dir] = nil, nil
		}
	}
	return fmt.Errorf("%s not as expected after %s", path, timeout)
}

// close ends the inotify instances.
func (w *waiter) close() {
	for _, f := range w.dirs {
		if f != nil {
			f.Close()
		}
	}
}

// watchDir returns a file that becomes readable when a file in dir is
// renamed into it or closed after a write, or nil when inotify is not
// there. Those are the ways a file waited for changes: confd renames its
// files into place, and a command appends to its log. Other events would
// only wake the benchmark in the middle of confd's work.
func watchDir(dir string) *os.File {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil
	}
	// A non-blocking descriptor is read through the runtime's poller,
	// which deadlines work with.
	return os.NewFile(uintptr(fd), "inotify "+dir)
}

// confdCommand is the command that runs the measured binary with args
// until ctx ends. It goes when the benchmark goes, however that ends, so
// that a benchmark killed leaves no confd running.
func (b *bench) confdCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.o.confd, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// watchPeakRSS reads the peak resident set size (VmHWM, in KiB) of pid
// every millisecond until the process is gone, and sends the last value
// read. The rusage of a child is no use here: Linux carries the parent's
// peak into it across fork and exec, and this process holds etcd.
func watchPeakRSS(pid int) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		path := fmt.Sprintf("/proc/%d/status", pid)
		for {
			b, err := os.ReadFile(path)
			if err != nil {
				break
			}
			i := strings.Index(string(b), "VmHWM:")
			if i < 0 { // a zombie: exited, not yet waited for
				break
			}
			f := strings.Fields(string(b)[i+len("VmHWM:"):])
			if len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil && v > peak {
					peak = v
				}
			}
			time.Sleep(time.Millisecond)
		}
		out <- peak
	}()
	return out
}

// disk is I/O counters of a block device; nil where there are none.
type disk struct{ writes, discards, flushes float64 }

// minus returns d less o, nil when either is.
func (d *disk) minus(o *disk) *disk {
	if d == nil || o == nil {
		return nil
	}
	return &disk{d.writes - o.writes, d.discards - o.discards, d.flushes - o.flushes}
}

// readDisk reads the counters of the block device that holds path from
// /sys/dev/block/MAJ:MIN/stat: write requests (field 5), discard requests
// (field 12, since Linux 4.18) and flush requests (field 16, since Linux
// 5.5). It returns nil when there is no such device.
func readDisk(path string) *disk {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return nil
	}
	return parseDiskStat(string(b))
}

// parseDiskStat reads the text of a block device's stat file.
func parseDiskStat(text string) *disk {
	f := strings.Fields(text)
	if len(f) < 17 {
		return nil
	}
	writes, err1 := strconv.ParseFloat(f[4], 64)
	discards, err2 := strconv.ParseFloat(f[11], 64)
	flushes, err3 := strconv.ParseFloat(f[15], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil
	}
	return &disk{writes: writes, discards: discards, flushes: flushes}
}

// counters are the etcd figures read from its metrics.
type counters struct {
	sentBytes float64
	requests  float64
}

func (b *bench) scrape() (counters, error) {
	var c counters
	resp, err := http.Get(b.metrics)
	if err != nil {
		return c, fmt.Errorf("read etcd metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "etcd_network_client_grpc_sent_bytes_total":
			c.sentBytes += v
		case strings.HasPrefix(name, "grpc_server_handled_total{") && strings.Contains(name, `grpc_type="unary"`):
			c.requests += v
		}
	}
	return c, sc.Err()
}

func printReport(w io.Writer, rep report) {
	fmt.Fprintf(w, "machine: %s\n", rep.Machine)
	fmt.Fprintf(w, "keys put into etcd in %s order\n", rep.LoadOrder)
	if r := rep.Startup; r != nil {
		fmt.Fprintf(w, "\none-shot start-up, %d keys (median of runs, [min–max])\n", r.Keys)
		fmt.Fprintf(w, "%22s %22s %22s\n", "wall ms", "cpu ms", "peak rss MB")
		fmt.Fprintf(w, "%22s %22s %22s\n", r.WallMS, r.CPUMS, r.RSSMB)
	}
	if len(rep.Burst) > 0 {
		fmt.Fprintln(w, "\nburst in watch mode: last put -> exact final file (median of runs, [min–max])")
		fmt.Fprintf(w, "%8s %6s %-12s %22s %22s %22s\n", "keys", "puts", "wait", "ms after last put", "renders", "reloads")
		for _, r := range rep.Burst {
			wait := r.Wait
			if wait == "" {
				wait = "default"
			}
			fmt.Fprintf(w, "%8d %6d %-12s %22s %22s %22s\n", r.Keys, r.Puts, wait, r.SettleMS, r.Renders, r.Reloads)
		}
	}
	if len(rep.OneShot) > 0 {
		fmt.Fprintln(w, "\none-shot (median of runs, [min–max]; ×haproxy: median of the ratios of runs side by side)")
		fmt.Fprintf(w, "%-10s %8s %22s %22s %22s %7s\n", "template", "keys", "wall ms", "cpu ms", "peak rss MB", "×haproxy")
		for _, r := range rep.OneShot {
			fmt.Fprintf(w, "%-10s %8d %22s %22s %22s %7.2f\n", r.Template, r.Keys, r.WallMS, r.CPUMS, r.RSSMB, r.Ratio)
		}
	}
	if len(rep.Watch) > 0 {
		fmt.Fprintln(w, "\nwatch: put -> dest updated")
		fmt.Fprintf(w, "%8s %8s %8s %8s %8s %8s %8s %11s %14s %14s %14s %14s %14s\n", "keys", "changes", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "put p50 ms", "etcd B/change", "etcd req/chg", "flushes/chg", "writes/chg", "discards/chg")
		for _, r := range rep.Watch {
			fmt.Fprintf(w, "%8d %8d %8.2f %8.2f %8.2f %8.2f %8.2f %11.2f %14.0f %14.2f %14s %14s %14s\n", r.Keys, r.Changes, r.P50MS, r.P90MS, r.P99MS, r.MaxMS, r.MeanMS, r.PutP50MS, r.BytesPerChange, r.RequestsPerChange, optional(r.DiskFlushesPerChange), optional(r.DiskWritesPerChange), optional(r.DiskDiscardsPerChange))
		}
	}
	if len(rep.Idle) > 0 {
		fmt.Fprintln(w, "\nidle: nothing changes")
		fmt.Fprintf(w, "%-12s %8s %8s %10s %8s %12s %10s\n", "mode", "keys", "seconds", "cpu s", "rss MB", "etcd bytes", "etcd reqs")
		for _, r := range rep.Idle {
			fmt.Fprintf(w, "%-12s %8d %8.0f %10.2f %8.1f %12.0f %10.0f\n", r.Mode, r.Keys, r.Seconds, r.CPUSeconds, r.RSSMB, r.EtcdBytes, r.EtcdReqs)
		}
	}
}

// optional formats a figure that may be missing.
func optional(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *f)
}

func (s stats) String() string {
	return fmt.Sprintf("%.1f [%.1f–%.1f]", s.Median, s.Min, s.Max)
}
