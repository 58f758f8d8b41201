// Command bench measures the built confd binary as a user runs it, against a
// real etcd: the start-up cost of a one-shot run, a burst of puts in watch
// mode, one-shot renders at several keyspace sizes, the latency from a put
// to the updated file in watch mode, the etcd traffic per change, and what
// confd costs while nothing changes. Every file confd writes is checked
// byte for byte. It prints a table and writes the figures as JSON.
//
//	go run ./integration/bench -confd bin/confd
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
	"github.com/etcdconfd/confd/internal/syncio"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if dir := os.Getenv(serveEtcdEnv); dir != "" {
		code = serveEtcd(ctx, dir, os.Stdout, os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

type options struct {
	confd     string
	sizes     []int
	watch     []int
	runs      int
	changes   int
	jsonPath  string
	endpoints string
	// inProcess runs the embedded etcd in the benchmark's own process
	// rather than in a child process.
	inProcess bool

	startupKeys  int
	burstKeys    int
	burstPuts    int
	burstClients int
	burstRuns    int
	burstWait    string
	loadOrder    string
	idle         time.Duration
	idleKeys     int
	only         map[string]bool
}

// sections are the parts of the benchmark, in the order they run.
var sections = []string{"startup", "burst", "oneshot", "watch", "idle"}

func parse(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	sizes := fs.String("sizes", "1000,10000,100000", "keyspace sizes for the one-shot figures")
	watch := fs.String("watch-sizes", "1000,100000", "keyspace sizes for the watch figures")
	fs.StringVar(&o.confd, "confd", "bin/confd", "the confd `binary` to measure")
	fs.IntVar(&o.runs, "runs", 5, "runs of each one-shot figure (the median is reported)")
	fs.IntVar(&o.changes, "changes", 50, "changes per watch-latency figure")
	fs.StringVar(&o.jsonPath, "json", "integration/bench/results/latest.json", "where to write the figures")
	fs.StringVar(&o.endpoints, "endpoints", "", "an external etcd to use instead of an embedded one (its keys under /app and /svc are replaced)")
	fs.BoolVar(&o.inProcess, "etcd-in-process", false, "run the embedded etcd inside the benchmark's process instead of a process of its own")
	fs.IntVar(&o.startupKeys, "startup-keys", 10, "keyspace size for the start-up figure")
	fs.IntVar(&o.burstKeys, "burst-keys", 1000, "keyspace size for the burst figures")
	fs.IntVar(&o.burstPuts, "burst-puts", 1000, "puts of distinct keys in one burst")
	fs.IntVar(&o.burstClients, "burst-clients", 16, "concurrent writers in a burst")
	fs.IntVar(&o.burstRuns, "burst-runs", 3, "runs of each burst figure")
	fs.StringVar(&o.burstWait, "burst-wait", "50ms:500ms", "the -wait of the second burst figure")
	fs.StringVar(&o.loadOrder, "load-order", orderIndex, "the order in which keys are put into etcd: index (srv-0, srv-1, …) or random")
	fs.DurationVar(&o.idle, "idle", 30*time.Second, "how long each idle figure watches confd")
	fs.IntVar(&o.idleKeys, "idle-keys", 100000, "keyspace size for the idle figures")
	only := fs.String("only", strings.Join(sections, ","), "the sections to run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.only = map[string]bool{}
	for _, sec := range strings.Split(*only, ",") {
		if sec = strings.TrimSpace(sec); sec == "" {
			continue
		}
		if !slices.Contains(sections, sec) {
			return o, fmt.Errorf("-only: unknown section %q (have %s)", sec, strings.Join(sections, ", "))
		}
		o.only[sec] = true
	}
	if o.loadOrder != orderIndex && o.loadOrder != orderRandom {
		return o, fmt.Errorf("-load-order: %q is neither %s nor %s", o.loadOrder, orderIndex, orderRandom)
	}
	if _, _, err := parseWait(o.burstWait); err != nil {
		return o, fmt.Errorf("-burst-wait: %w", err)
	}
	var err error
	if o.sizes, err = ints(*sizes); err != nil {
		return o, fmt.Errorf("-sizes: %w", err)
	}
	if o.watch, err = ints(*watch); err != nil {
		return o, fmt.Errorf("-watch-sizes: %w", err)
	}
	if o.runs < 1 || o.changes < 1 || o.startupKeys < 1 || o.burstKeys < 1 || o.burstPuts < 1 ||
		o.burstClients < 1 || o.burstRuns < 1 || o.idle <= 0 || o.idleKeys < 1 {
		return o, errors.New("counts, sizes and durations must be positive")
	}
	return o, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// report is every figure of one run of the benchmark.
type report struct {
	Machine string `json:"machine"`
	Date    string `json:"date"`
	// LoadOrder is the order in which the keys were put (-load-order).
	LoadOrder string          `json:"load_order"`
	Startup   *startupResult  `json:"startup,omitempty"`
	Burst     []burstResult   `json:"burst,omitempty"`
	OneShot   []oneShotResult `json:"one_shot,omitempty"`
	Watch     []watchResult   `json:"watch,omitempty"`
	Idle      []idleResult    `json:"idle,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		return 2
	}
	if _, err := os.Stat(o.confd); err != nil {
		fmt.Fprintf(stderr, "bench: %v (run make build first)\n", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "confd-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	// The etcd process writes to log too, from a goroutine of os/exec.
	log := syncio.NewWriter(stderr)
	endpoints, metricsURL, cli, stopEtcd, err := startEtcd(ctx, o, tmp, log)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer stopEtcd()
	b := &bench{ctx: ctx, o: o, tmp: tmp, cli: cli, endpoint: endpoints, metrics: metricsURL, log: log}
	defer b.waiter.close()
	rep := report{Machine: machine(), Date: time.Now().UTC().Format(time.RFC3339), LoadOrder: o.loadOrder}
	steps := map[string]func() error{
		"startup": func() error {
			r, err := b.startup()
			rep.Startup = &r
			return err
		},
		"burst":   func() (err error) { rep.Burst, err = b.burst(); return err },
		"oneshot": func() (err error) { rep.OneShot, err = b.oneShot(); return err },
		"watch":   func() (err error) { rep.Watch, err = b.watch(); return err },
		"idle":    func() (err error) { rep.Idle, err = b.idle(); return err },
	}
	for _, sec := range sections {
		if err == nil && o.only[sec] {
			err = steps[sec]()
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	printReport(stdout, rep)
	if err := writeJSON(o.jsonPath, rep); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nfigures written to %s\n", o.jsonPath)
	return 0
}

// startEtcd connects to the external etcd of -endpoints, or starts an
// embedded one: by default in a child process, so that etcd has a heap and
// a scheduler of its own, as a server of a real cluster has, rather than
// sharing them with the benchmark's keyspaces and its sampling of confd.
func startEtcd(ctx context.Context, o options, tmp string, stderr io.Writer) (endpoint, metrics string, cli *clientv3.Client, stop func(), err error) {
	dataDir := filepath.Join(tmp, "etcd")
	var stopEtcd func()
	switch {
	case o.endpoints != "":
		cli, err = clientv3.New(clientv3.Config{Endpoints: strings.Split(o.endpoints, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			return "", "", nil, nil, err
		}
		ep := strings.Split(o.endpoints, ",")[0]
		return o.endpoints, ep + "/metrics", cli, func() { cli.Close() }, nil
	case o.inProcess:
		s, err := etcdtest.Run(ctx, dataDir)
		if err != nil {
			return "", "", nil, nil, err
		}
		endpoint, stopEtcd = s.Endpoints()[0], s.Stop
	default:
		if endpoint, stopEtcd, err = startEtcdProcess(ctx, dataDir, stderr); err != nil {
			return "", "", nil, nil, err
		}
	}
	cli, err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		stopEtcd()
		return "", "", nil, nil, err
	}
	return endpoint, endpoint + "/metrics", cli, func() { cli.Close(); stopEtcd() }, nil
}

// serveEtcdEnv names the variable that makes the benchmark's binary run
// only an embedded etcd, with its data in the directory the variable
// names: that is how the benchmark starts etcd in a process of its own.
const serveEtcdEnv = "CONFD_BENCH_SERVE_ETCD"

// startEtcdProcess runs this binary again as an embedded etcd (see
// serveEtcd) and returns its client URL once it serves. stop ends the
// process and waits for it.
func startEtcdProcess(ctx context.Context, dataDir string, stderr io.Writer) (endpoint string, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("find the benchmark's binary: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serveEtcdEnv+"="+dataDir)
	cmd.Stderr = stderr
	// The member goes when the benchmark goes, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start etcd process: %w", err)
	}
	stop = sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	// The child prints its URL once it serves, or exits; a cancelled ctx
	// stops it, which ends the read too.
	halt := context.AfterFunc(ctx, stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if !halt() || err != nil {
		stop()
		return "", nil, fmt.Errorf("start etcd process: no client URL (%v)", err)
	}
	return strings.TrimSpace(line), stop, nil
}

// serveEtcd runs a single-member etcd with its data in dir, prints its
// client URL on stdout once it serves, and stops it when ctx ends (on
// SIGTERM).
func serveEtcd(ctx context.Context, dir string, stdout, stderr io.Writer) int {
	s, err := etcdtest.Run(ctx, dir)
	if err != nil {
		fmt.Fprintln(stderr, "bench etcd:", err)
		return 1
	}
	defer s.Stop()
	fmt.Fprintln(stdout, s.Endpoints()[0])
	<-ctx.Done()
	return 0
}

func machine() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	model := "unknown cpu"
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, model, _ = strings.Cut(l, ": ")
			break
		}
	}
	n := strings.Count(string(b), "processor\t:")
	return fmt.Sprintf("%d × %s", n, model)
}

func writeJSON(path string, rep report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
