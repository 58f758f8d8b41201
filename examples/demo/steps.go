package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdconfd/confd/internal/etcdtest"
)

const (
	// serversPrefix is where the example's servers register, the key
	// prefix its template resource watches.
	serversPrefix = "/app/servers/"
	// etcdTimeout bounds each request to etcd.
	etcdTimeout = 10 * time.Second
	// commandTimeout bounds each run of confd or haproxy.
	commandTimeout = 60 * time.Second
)

// server is one backend that registers itself in etcd.
type server struct{ name, addr string }

// servers are the backends of the example, as containers would register
// them: /app/servers/<name> = host:port.
var servers = []server{
	{"cocky_morse", "192.168.1.22:49156"},
	{"goofy_goldstine", "192.168.1.22:49158"},
	{"prickly_blackwell", "192.168.1.22:49154"},
}

// step is one stage of a walk-through.
type step struct {
	name string
	run  func(ctx context.Context) error
}

// walk runs the steps in order and stops at the first that fails or when
// ctx ends.
func walk(ctx context.Context, steps []step) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// demo is the state the steps share. Each step fills in what later steps
// need; close releases whatever was started.
type demo struct {
	confd   string // the confd binary
	src     string // directory holding conf.d/ and templates/
	work    string // temporary directory for everything the demo writes
	out     io.Writer
	errOut  io.Writer
	haproxy string // path of haproxy, empty when it is not installed

	etcd    *etcdtest.Server
	client  *clientv3.Client
	node    string      // host:port of etcd, as given to confd -node
	confdir string      // the prepared confdir
	outputs []rewritten // the resources in confdir, in file name order

	daemon   *daemon           // confd -watch, once started
	rendered map[string]string // dest -> content the daemon last wrote
}

func newDemo(confd, src, work string, out, errOut io.Writer) *demo {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = ""
	}
	return &demo{confd: confd, src: src, work: work, out: out, errOut: errOut, haproxy: haproxy}
}

// onetime is the walk-through of confd -onetime. Other walk-throughs reuse
// its first steps and add their own.
func (d *demo) onetime() []step {
	return []step{
		{"start etcd", d.startEtcd},
		{"register servers", d.registerServers},
		{"prepare confdir", d.prepareConfdir},
		{"run confd", d.runConfdOnce},
		{"show result", d.showResult},
		{"check result", d.checkResult},
	}
}

// close stops what the steps started.
func (d *demo) close() {
	if d.daemon != nil {
		if _, err := d.daemon.stop(stopTimeout); err != nil {
			fmt.Fprintf(d.errOut, "demo: %v\n", err)
		}
	}
	if d.client != nil {
		d.client.Close()
	}
	if d.etcd != nil {
		d.etcd.Stop()
	}
}

// say prints one line of the walk-through.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

func (d *demo) startEtcd(ctx context.Context) error {
	d.say("==> starting etcd inside this process")
	s, err := etcdtest.Run(ctx, filepath.Join(d.work, "etcd"))
	if err != nil {
		return err
	}
	d.etcd = s
	u, err := url.Parse(s.Endpoints()[0])
	if err != nil {
		return fmt.Errorf("parse endpoint: %w", err)
	}
	d.node = u.Host
	d.say("    serving clients at %s", d.node)
	c, err := s.Dial()
	if err != nil {
		return err
	}
	d.client = c
	return nil
}

func (d *demo) registerServers(ctx context.Context) error {
	d.say("==> registering %d servers under %s, as the containers running them would", len(servers), strings.TrimSuffix(serversPrefix, "/"))
	for _, s := range servers {
		if err := d.put(ctx, serversPrefix+s.name, s.addr); err != nil {
			return err
		}
		d.say("    put %s%s = %s", serversPrefix, s.name, s.addr)
	}
	return nil
}

func (d *demo) put(ctx context.Context, key, value string) error {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	if _, err := d.client.Put(ctx, key, value); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (d *demo) prepareConfdir(_ context.Context) error {
	d.confdir = filepath.Join(d.work, "confd")
	outDir := filepath.Join(d.work, "out")
	d.say("==> preparing confdir %s from %s and %s", d.confdir,
		filepath.Join(d.src, "conf.d"), filepath.Join(d.src, "templates"))
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	outputs, err := prepareConfdir(d.src, d.confdir, outDir, d.installed)
	if err != nil {
		return err
	}
	for _, o := range outputs {
		check := "check_cmd dropped (" + o.checkProgram + " is not installed)"
		if o.checkKept {
			check = "check_cmd kept"
		} else if o.checkProgram == "" {
			check = "no check_cmd"
		}
		d.say("    conf.d/%s: dest %s -> %s", o.name, o.origDest, o.dest)
		d.say("    conf.d/%s: reload_cmd dropped, %s", o.name, check)
	}
	d.outputs = outputs
	return nil
}

// installed reports whether program is on PATH.
func (d *demo) installed(program string) bool {
	_, err := exec.LookPath(program)
	return err == nil
}

// confdArgs are the flags of a run of confd against the demo's etcd and
// confdir, after the mode flags.
func (d *demo) confdArgs(mode ...string) []string {
	return append(mode, "-backend", "etcdv3", "-node", d.node, "-confdir", d.confdir, "-log-level", "info")
}

func (d *demo) runConfdOnce(ctx context.Context) error {
	args := d.confdArgs("-onetime")
	d.say("==> running confd once, as you would:")
	d.say("    $ %s %s", d.confd, strings.Join(args, " "))
	return d.command(ctx, d.confd, args...)
}

// command runs a program to completion, its output streamed to the
// terminal.
func (d *demo) command(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = d.out, d.errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(name), err)
	}
	return nil
}

func (d *demo) showResult(_ context.Context) error {
	for _, o := range d.outputs {
		b, err := os.ReadFile(o.dest)
		if err != nil {
			return err
		}
		d.say("==> %s, rendered from %s:", o.dest, o.name)
		if _, err := d.out.Write(b); err != nil {
			return err
		}
		if !bytes.HasSuffix(b, []byte("\n")) {
			d.say("")
		}
	}
	return nil
}

func (d *demo) checkResult(ctx context.Context) error {
	if d.haproxy == "" {
		d.say("==> haproxy is not installed, so the check was skipped (apt-get install haproxy to enable it)")
		return nil
	}
	for _, o := range d.outputs {
		d.say("==> checking it: haproxy -c -f %s", o.dest)
		if err := d.command(ctx, d.haproxy, "-c", "-f", o.dest); err != nil {
			return err
		}
		d.say("    haproxy accepts it")
	}
	return nil
}
