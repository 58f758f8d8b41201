package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcdconfd/confd/pkg/filesync"
	"github.com/etcdconfd/confd/pkg/kv"
	"github.com/etcdconfd/confd/pkg/render"
	"github.com/etcdconfd/confd/pkg/resource"
)

// Source provides every key at or below the given roots, all read at one
// consistent revision.
type Source interface {
	Snapshot(ctx context.Context, roots []string) (*kv.Snapshot, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, roots []string) (*kv.Snapshot, error)

// Snapshot calls f.
func (f SourceFunc) Snapshot(ctx context.Context, roots []string) (*kv.Snapshot, error) {
	return f(ctx, roots)
}

// Syncer installs rendered content; *filesync.Syncer is one.
type Syncer interface {
	SyncContent(ctx context.Context, t filesync.Target, content filesync.Content) (filesync.Result, error)
}

var _ Syncer = (*filesync.Syncer)(nil)

// Options tune a Processor.
type Options struct {
	// DiffOut receives the unified diff of every resource that would change
	// in noop mode; nil discards it.
	DiffOut io.Writer
	// Render is passed to every template.
	Render render.Options
	// Observer is told the outcome of every render; nil tells no one.
	Observer Observer
}

// Observer is told how each resource is doing, from the goroutine that
// renders it; its methods must return quickly. It must be safe for
// concurrent use.
type Observer interface {
	// Rendered reports one render of resource from the snapshot at
	// revision rev, install and commands included, that took d; err is
	// nil when the file is now current.
	Rendered(resource string, rev int64, d time.Duration, err error)
	// Checked reports a run of check_cmd that took d; err is nil when it
	// passed.
	Checked(resource string, d time.Duration, err error)
	// Reloaded reports a run of reload_cmd that took d; err is nil when it
	// passed.
	Reloaded(resource string, d time.Duration, err error)
	// Pending reports whether the resource's file is behind the keys: a
	// change not rendered yet, or a failure to try again.
	Pending(resource string, pending bool)
}

// nopObserver is the Observer of a Processor without one.
type nopObserver struct{}

func (nopObserver) Rendered(string, int64, time.Duration, error) {}
func (nopObserver) Checked(string, time.Duration, error)         {}
func (nopObserver) Reloaded(string, time.Duration, error)        {}
func (nopObserver) Pending(string, bool)                         {}

// Error is the failure of one resource in one step.
type Error struct {
	Resource string // resource file name, e.g. "haproxy.toml"
	Op       string // "parse template", "read keys", "render", "sync"
	Err      error
}

func (e *Error) Error() string {
	var ce *filesync.CommandError
	if errors.As(e.Err, &ce) && ce.Resource == e.Resource {
		return e.Err.Error() // it names the resource and the command already
	}
	return fmt.Sprintf("resource %s: %s: %v", e.Resource, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// unit is one resource with its parsed template.
type unit struct {
	res    resource.Resource
	tmpl   *render.Template
	target filesync.Target
	roots  []string
	// state is used by the one goroutine of a long-running mode that
	// renders this unit.
	state unitState
}

// Processor renders and syncs a fixed set of resources.
type Processor struct {
	log   *logrus.Logger
	src   Source
	sync  Syncer
	opts  Options
	units []*unit
}

// New parses the template of every resource. A resource whose template does
// not parse is left out and reported in the returned errors (one *Error
// each); the others are kept.
func New(log *logrus.Logger, src Source, syncer Syncer, resources []resource.Resource, opts Options) (*Processor, []error) {
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	p := &Processor{log: log, src: src, sync: syncer, opts: opts}
	var errs []error
	for _, r := range resources {
		t, err := render.ParseFile(r.Src, opts.Render)
		if err != nil {
			errs = append(errs, &Error{Resource: r.Name, Op: "parse template", Err: err})
			continue
		}
		p.units = append(p.units, &unit{res: r, tmpl: t, target: target(r), roots: kv.Roots(r.Prefix, r.Keys)})
	}
	return p, errs
}

func target(r resource.Resource) filesync.Target {
	t := filesync.Target{
		Resource:  r.Name,
		Dest:      r.Dest,
		Mode:      r.Mode,
		ModeSet:   r.ModeSet,
		Owner:     r.Owner,
		Group:     r.Group,
		CheckCmd:  r.CheckCmd,
		ReloadCmd: r.ReloadCmd,
	}
	if r.UID >= 0 {
		uid := r.UID
		t.UID = &uid
	}
	if r.GID >= 0 {
		gid := r.GID
		t.GID = &gid
	}
	return t
}

// Len is the number of resources the processor handles.
func (p *Processor) Len() int { return len(p.units) }

// Names returns the names of the resources the processor handles, in order.
func (p *Processor) Names() []string {
	names := make([]string, len(p.units))
	for i, u := range p.units {
		names[i] = u.res.Name
	}
	return names
}

// roots returns the union of the key roots of every resource, sorted.
func (p *Processor) roots() []string {
	set := map[string]struct{}{}
	for _, u := range p.units {
		for _, r := range u.roots {
			set[r] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Once reads every resource's keys at one revision, renders and syncs each
// resource, and returns the failures joined (nil when all succeeded). One
// resource's failure does not stop the others.
func (p *Processor) Once(ctx context.Context) error {
	if len(p.units) == 0 {
		return nil
	}
	snap, err := p.src.Snapshot(ctx, p.roots())
	if err != nil {
		err = fmt.Errorf("read keys: %w", err)
		p.log.WithError(err).Error("read keys failed")
		return err
	}
	var errs []error
	for _, u := range p.units {
		if err := p.step(ctx, u, snap, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unitState is what a long-running mode remembers of one resource between
// steps, so that a repeated failure is logged once. A failed reload is
// remembered by the syncer, next to the file, and run again by the next
// step that finds the file current.
type unitState struct {
	lastErr string
	// installed is when the last step replaced the destination (zero
	// when it did not).
	installed time.Time
	// mem is the memory of the last render, which the next one reuses.
	mem memory
}

// memory is what one render of a resource leaves for the next to reuse:
// the memory of its output and of the lists of its template's gets.
type memory struct {
	out   render.Buffer
	lists kv.Lists
}

// step renders u from snap, syncs it and logs the outcome. With st (daemon
// modes) a failure equal to the previous one is logged at debug level only.
func (p *Processor) step(ctx context.Context, u *unit, snap *kv.Snapshot, st *unitState) error {
	log := p.log.WithFields(logrus.Fields{
		"resource": u.res.Name,
		"dest":     u.res.Dest,
		"revision": snap.Revision(),
	})
	start := time.Now()
	var mem *memory
	if st != nil {
		mem = &st.mem
	}
	res, size, err := p.render(ctx, u, snap, mem)
	if st != nil {
		st.installed = res.Installed
	}
	p.observe(u, snap.Revision(), time.Since(start), res, err)
	if err != nil {
		p.logFailure(log, err, st)
		return err
	}
	if st != nil {
		if st.lastErr != "" {
			log.Info("recovered")
		}
		st.lastErr = ""
	}
	fields := logrus.Fields{"bytes": size, "duration": time.Since(start).Round(time.Microsecond)}
	switch {
	case res.Checked:
		log.WithFields(fields).Info("check passed")
	case res.Reloaded && !res.Written:
		log.WithFields(fields).Info("reloaded")
	case !res.Changed:
		log.WithFields(fields).Debug("unchanged")
	case !res.Written:
		log.WithFields(fields).Info("would change (noop)")
	case res.Reloaded:
		log.WithFields(fields).Info("updated and reloaded")
	default:
		log.WithFields(fields).Info("updated")
	}
	return nil
}

// render executes u's template on snap, in the memory of the render
// before when mem is not nil, and syncs the result.
func (p *Processor) render(ctx context.Context, u *unit, snap *kv.Snapshot, mem *memory) (filesync.Result, int, error) {
	view := snap.View(u.res.Prefix, u.res.Keys)
	var out *render.Buffer
	if mem != nil {
		view.ReuseLists(&mem.lists)
		out = &mem.out
	}
	chunks, err := u.tmpl.ExecuteChunks(ctx, view, out)
	if mem != nil {
		// The template is done with the lists; the output is in out.
		mem.lists.Reset()
	}
	if err != nil {
		return filesync.Result{}, 0, &Error{Resource: u.res.Name, Op: "render", Err: err}
	}
	content := filesync.Content(chunks)
	res, err := p.sync.SyncContent(ctx, u.target, content)
	if res.Diff != "" && p.opts.DiffOut != nil {
		if _, werr := io.WriteString(p.opts.DiffOut, res.Diff); werr != nil {
			p.log.WithError(werr).Warn("write diff")
		}
	}
	if err != nil {
		return res, content.Len(), &Error{Resource: u.res.Name, Op: "sync", Err: err}
	}
	return res, content.Len(), nil
}

// observe tells the observer the outcome of one step.
func (p *Processor) observe(u *unit, rev int64, d time.Duration, res filesync.Result, err error) {
	obs, name := p.opts.Observer, u.res.Name
	obs.Rendered(name, rev, d, err)
	var ce *filesync.CommandError
	failed := func(kind string) error {
		if errors.As(err, &ce) && ce.Kind == kind {
			return err
		}
		return nil
	}
	if res.CheckRan {
		obs.Checked(name, res.CheckDuration, failed(filesync.KindCheck))
	}
	if res.ReloadRan {
		obs.Reloaded(name, res.ReloadDuration, failed(filesync.KindReload))
	}
	obs.Pending(name, err != nil)
}

// logFailure logs a failed step; with st, only when it differs from the
// previous failure.
func (p *Processor) logFailure(log *logrus.Entry, err error, st *unitState) {
	if st != nil {
		if err.Error() == st.lastErr {
			log.WithError(err).Debug("still failing")
			return
		}
		st.lastErr = err.Error()
	}
	var ke *kv.KeyError
	var ce *filesync.CommandError
	switch {
	case errors.As(err, &ke) && st != nil:
		log.WithField("key", ke.Key).Warn("waiting for missing key")
	case errors.As(err, &ke):
		log.WithError(err).Error("render failed")
	case errors.As(err, &ce) && ce.Kind == filesync.KindCheck:
		log.WithError(err).Error("check failed")
	case errors.As(err, &ce):
		log.WithError(err).Error("reload failed")
	case errors.Is(err, context.Canceled):
		log.WithError(err).Debug("cancelled")
	default:
		var pe *Error
		if errors.As(err, &pe) && pe.Op == "render" {
			log.WithError(err).Error("render failed")
			return
		}
		log.WithError(err).Error("sync failed")
	}
}
