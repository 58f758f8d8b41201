package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// daemon is a confd started in watch or interval mode.
type daemon struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	logs   string // path of its stderr
}

// startDaemon starts confd with args and the confdir dir, its log in JSON
// at debug level in a file.
func (b *bench) startDaemon(dir, name string, args ...string) (*daemon, error) {
	logs := filepath.Join(b.tmp, name+".log")
	f, err := os.Create(logs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(b.ctx)
	all := append([]string{"-node", b.endpoint, "-confdir", dir, "-log-level", "debug", "-log-format", "json"}, args...)
	cmd := b.confdCommand(ctx, all...)
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	return &daemon{cmd: cmd, cancel: cancel, logs: logs}, nil
}

func (d *daemon) stop() {
	d.cancel()
	_ = d.cmd.Wait()
}

// renders counts the renders confd logged: one line per render of a
// resource, whatever its outcome.
func (d *daemon) renders() (int, error) {
	f, err := os.Open(d.logs)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			Resource string `json:"resource"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Resource == "" {
			continue
		}
		switch line.Msg {
		case "updated", "updated and reloaded", "unchanged", "reloaded", "render failed", "sync failed",
			"check failed", "reload failed", "still failing", "waiting for missing key":
			n++
		}
	}
	return n, sc.Err()
}

// cpuTime is the user and system CPU time of pid so far, from
// /proc/<pid>/stat, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// rssKB reads a field such as VmRSS or VmHWM of /proc/<pid>/status in KiB.
func rssKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	i := strings.Index(string(b), field+":")
	if i < 0 {
		return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
	}
	f := strings.Fields(string(b)[i+len(field)+1:])
	if len(f) == 0 {
		return 0, fmt.Errorf("empty %s", field)
	}
	return strconv.ParseInt(f[0], 10, 64)
}

type startupResult struct {
	Keys   int   `json:"keys"`
	WallMS stats `json:"wall_ms"`
	CPUMS  stats `json:"cpu_ms"`
	RSSMB  stats `json:"peak_rss_mb"`
}

// startup measures a one-shot render of a tiny keyspace: what confd costs
// before it has anything to do.
func (b *bench) startup() (startupResult, error) {
	ks, err := b.keyspace(b.o.startupKeys)
	if err != nil {
		return startupResult{}, err
	}
	all, err := b.oneShotRounds(ks, templates[:1])
	if err != nil {
		return startupResult{}, err
	}
	runs := all[0]
	res := startupResult{Keys: ks.n, WallMS: summarize(runs.wall), CPUMS: summarize(runs.cpu), RSSMB: summarize(runs.rss)}
	fmt.Fprintf(b.log, "start-up %d keys: %.1f ms\n", ks.n, res.WallMS.Median)
	return res, nil
}

type burstResult struct {
	Keys     int    `json:"keys"`
	Puts     int    `json:"puts"`
	Wait     string `json:"wait"`
	SettleMS stats  `json:"last_put_to_final_file_ms"`
	Renders  stats  `json:"renders"`
	Reloads  stats  `json:"reloads"`
}

// burst measures a burst of puts with default settings and with -wait.
func (b *bench) burst() ([]burstResult, error) {
	var out []burstResult
	for _, wait := range []string{"", b.o.burstWait} {
		r, err := b.burstRuns(wait)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (b *bench) burstRuns(wait string) (burstResult, error) {
	res := burstResult{Keys: b.o.burstKeys, Puts: b.o.burstPuts, Wait: wait}
	ks, err := b.keyspace(b.o.burstKeys)
	if err != nil {
		return res, err
	}
	var settle, renders, reloads []float64
	for run := 0; run < b.o.burstRuns; run++ {
		s, n, r, err := b.burstOnce(ks, wait, run)
		if err != nil {
			return res, err
		}
		settle, renders, reloads = append(settle, s), append(renders, float64(n)), append(reloads, float64(r))
	}
	res.SettleMS, res.Renders, res.Reloads = summarize(settle), summarize(renders), summarize(reloads)
	fmt.Fprintf(b.log, "burst of %d puts at %d keys (wait %q): final file %.1f ms after the last put, %.0f renders, %.0f reloads\n",
		res.Puts, res.Keys, wait, res.SettleMS.Median, res.Renders.Median, res.Reloads.Median)
	return res, nil
}

// burstOnce starts confd in watch mode, puts b.o.burstPuts distinct keys
// from several clients at once, and returns the time from the last put's
// answer to the exact final file (0 when the file was final before the last
// answer came back), and the renders and reloads the burst caused.
func (b *bench) burstOnce(ks keyspace, wait string, run int) (settleMS float64, renders, reloads int, err error) {
	reloadLog := filepath.Join(b.tmp, "reloads.log")
	os.Remove(reloadLog)
	dir, dest, err := b.confdirWith("haproxy", templates[0].text, fmt.Sprintf("reload_cmd = %q\n", "echo >> "+reloadLog))
	if err != nil {
		return 0, 0, 0, err
	}
	os.Remove(dest)
	args := []string{"-watch"}
	if wait != "" {
		args = append(args, "-wait", wait)
	}
	d, err := b.startDaemon(dir, "burst", args...)
	if err != nil {
		return 0, 0, 0, err
	}
	defer d.stop()
	if err := b.waitFor(dest, 60*time.Second, func(s string) bool { return s == ks.expected("haproxy") }); err != nil {
		return 0, 0, 0, fmt.Errorf("first render: %w", err)
	}
	// Let the first render's reload finish before counting.
	if err := b.waitFor(reloadLog, 10*time.Second, func(s string) bool { return s != "" }); err != nil {
		return 0, 0, 0, fmt.Errorf("first reload: %w", err)
	}
	renders0, err := d.renders()
	if err != nil {
		return 0, 0, 0, err
	}
	reloads0 := countLines(reloadLog)

	// Distinct keys, so that the final state does not depend on the
	// order in which etcd applies the puts.
	type put struct{ name, val string }
	puts := make([]put, b.o.burstPuts)
	names := sortedKeys(ks.servers)
	seen := make(map[string]bool, len(puts))
	for i := range puts {
		name := names[(i*7919)%len(names)]
		if seen[name] {
			return 0, 0, 0, fmt.Errorf("%d puts on %d keys would put a key twice", len(puts), len(names))
		}
		seen[name] = true
		puts[i] = put{name, fmt.Sprintf("10.254.%d.%d:%d", run, i&255, 10000+i)}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		last time.Time
		errs []error
		next = make(chan put)
	)
	for range b.o.burstClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				_, err := b.cli.Put(b.ctx, "/app/servers/"+p.name, p.val)
				now := time.Now()
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				if now.After(last) {
					last = now
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range puts {
		ks.servers[p.name] = p.val
		next <- p
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, 0, fmt.Errorf("burst: %w", err)
	}
	want := ks.expected("haproxy")
	if err := b.waitFor(dest, 30*time.Second, func(s string) bool { return s == want }); err != nil {
		return 0, 0, 0, fmt.Errorf("final file after the burst: %w", err)
	}
	settleMS = max(0, float64(time.Since(last).Microseconds())/1000)
	// Renders may still be in flight or pending: wait until confd is quiet
	// (no new render for a while) before counting.
	quiet := 300 * time.Millisecond
	if _, max, err := parseWait(wait); err == nil {
		quiet += max
	}
	prev := -1
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		n, err := d.renders()
		if err != nil {
			return 0, 0, 0, err
		}
		if n == prev {
			break
		}
		prev = n
		if err := sleepCtx(b.ctx, quiet); err != nil {
			return 0, 0, 0, err
		}
	}
	if got, err := os.ReadFile(dest); err != nil || string(got) != want {
		return 0, 0, 0, errors.New("the file changed after it was final")
	}
	return settleMS, prev - renders0, countLines(reloadLog) - reloads0, nil
}

// parseWait reads the max of a -wait value ("min[:max]"); max defaults to
// min.
func parseWait(s string) (minWait, maxWait time.Duration, err error) {
	lo, hi, found := strings.Cut(s, ":")
	if minWait, err = time.ParseDuration(lo); err != nil {
		return 0, 0, err
	}
	maxWait = minWait
	if found {
		if maxWait, err = time.ParseDuration(hi); err != nil {
			return 0, 0, err
		}
	}
	return minWait, maxWait, nil
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type idleResult struct {
	Mode       string  `json:"mode"`
	Keys       int     `json:"keys"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSMB      float64 `json:"rss_mb"`
	EtcdBytes  float64 `json:"etcd_bytes"`
	EtcdReqs   float64 `json:"etcd_requests"`
}

// idle measures what confd costs while nothing changes, in watch mode and
// with -interval 1.
func (b *bench) idle() ([]idleResult, error) {
	ks, err := b.keyspace(b.o.idleKeys)
	if err != nil {
		return nil, err
	}
	var out []idleResult
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"watch", []string{"-watch"}},
		{"interval 1s", []string{"-interval", "1"}},
	} {
		r, err := b.idleOnce(ks, mode.name, mode.args)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		fmt.Fprintf(b.log, "idle %s, %d keys, %.0f s: %.2f CPU s, %.1f MB RSS, %.0f bytes from etcd\n",
			r.Mode, r.Keys, r.Seconds, r.CPUSeconds, r.RSSMB, r.EtcdBytes)
	}
	return out, nil
}

func (b *bench) idleOnce(ks keyspace, mode string, args []string) (idleResult, error) {
	res := idleResult{Mode: mode, Keys: ks.n, Seconds: b.o.idle.Seconds()}
	dir, dest, err := b.confdir("haproxy", templates[0].text)
	if err != nil {
		return res, err
	}
	os.Remove(dest)
	d, err := b.startDaemon(dir, "idle", args...)
	if err != nil {
		return res, err
	}
	defer d.stop()
	if err := b.waitFor(dest, 60*time.Second, func(s string) bool { return s == ks.expected("haproxy") }); err != nil {
		return res, fmt.Errorf("first render: %w", err)
	}
	// Start counting once the first render is over.
	if err := sleepCtx(b.ctx, time.Second); err != nil {
		return res, err
	}
	pid := d.cmd.Process.Pid
	cpu0, err := cpuTime(pid)
	if err != nil {
		return res, err
	}
	before, err := b.scrape()
	if err != nil {
		return res, err
	}
	if err := sleepCtx(b.ctx, b.o.idle); err != nil {
		return res, err
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return res, err
	}
	after, err := b.scrape()
	if err != nil {
		return res, err
	}
	rss, err := rssKB(pid, "VmRSS")
	if err != nil {
		return res, err
	}
	res.CPUSeconds = (cpu1 - cpu0).Seconds()
	res.RSSMB = float64(rss) / 1024
	res.EtcdBytes = after.sentBytes - before.sentBytes
	res.EtcdReqs = after.requests - before.requests
	return res, nil
}
