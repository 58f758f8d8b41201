package filesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
)

// Kinds of command, as found in CommandError.Kind.
const (
	KindCheck  = "check"
	KindReload = "reload"
)

const (
	// maxOutput is how much of a command's output is kept: the last bytes,
	// where tools put their verdict.
	maxOutput = 64 << 10
	// maxErrorOutput is how much of that output an error message shows.
	maxErrorOutput = 2 << 10
	// waitDelay bounds how long a finished command's output pipe is drained
	// when a background child it started keeps the pipe open.
	waitDelay = 2 * time.Second
)

// CommandError is a check or reload command that failed, timed out, was
// cancelled, could not be started or could not be rendered.
type CommandError struct {
	Resource string
	// Kind is KindCheck or KindReload.
	Kind string
	// Command is the rendered command line (the template text when
	// rendering failed).
	Command string
	// ExitCode is the exit status, or -1 when the command did not exit on
	// its own (killed, not started, not rendered).
	ExitCode int
	// Output is the combined stdout and stderr, at most its last 64 KiB.
	Output string
	Err    error
}

// Error names the resource, the command kind, the exit status or cause and
// the end of the output. It leaves out the command line, which may carry
// credentials.
func (e *CommandError) Error() string {
	var b strings.Builder
	if e.Resource != "" {
		fmt.Fprintf(&b, "resource %s: ", e.Resource)
	}
	fmt.Fprintf(&b, "%s_cmd failed", e.Kind)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		if len(out) > maxErrorOutput {
			out = "..." + trimPartialRune(out[len(out)-maxErrorOutput:])
		}
		b.WriteString(": output: ")
		b.WriteString(out)
	}
	return b.String()
}

// Unwrap returns the cause, such as *exec.ExitError,
// context.DeadlineExceeded or context.Canceled.
func (e *CommandError) Unwrap() error { return e.Err }

// ValidateCommand reports whether text is a valid check or reload command
// template, using only {{.src}} and {{.dest}}.
func ValidateCommand(text string) error {
	_, err := renderCommand(text, "/src", "/dest")
	return err
}

func renderCommand(text, src, dest string) (string, error) {
	tmpl, err := template.New("command").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]string{"src": src, "dest": dest}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// run renders and runs one command of t and returns its output. The command
// runs in its own process group; when ctx is done or the timeout passes,
// the whole group is killed.
func (s *Syncer) run(ctx context.Context, log *logrus.Entry, t Target, kind, text, src string) (string, error) {
	command, err := renderCommand(text, src, t.Dest)
	if err != nil {
		return "", &CommandError{Resource: t.Resource, Kind: kind, Command: text, ExitCode: -1,
			Err: fmt.Errorf("render: %w", err)}
	}

	cctx, cancel := ctx, context.CancelFunc(func() {})
	if s.opts.CommandTimeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, s.opts.CommandTimeout)
	}
	defer cancel()

	var out tailBuffer
	cmd := exec.CommandContext(cctx, "/bin/sh", "-c", command)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay

	log = log.WithFields(logrus.Fields{"kind": kind, "command": command})
	log.Debug("running command")
	start := time.Now()
	err = cmd.Run()
	output := out.String()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command succeeded; a child it left running holds the output
		// open, and the pipe was closed on it.
		log.Debug("command left output open")
		err = nil
	}
	if err == nil {
		log.WithFields(logrus.Fields{"output": output, "duration": time.Since(start)}).Debug("command succeeded")
		return output, nil
	}

	ce := &CommandError{Resource: t.Resource, Kind: kind, Command: command, ExitCode: -1, Output: output, Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
	}
	switch {
	case ctx.Err() != nil:
		ce.Err = ctx.Err()
	case cctx.Err() != nil:
		ce.Err = fmt.Errorf("timed out after %s: %w", s.opts.CommandTimeout, cctx.Err())
	}
	return output, ce
}

// killGroup kills every process in the group led by pid.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct {
	buf       []byte
	truncated bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > maxOutput {
		b.buf = append(b.buf[:0], p[len(p)-maxOutput:]...)
		b.truncated = true
		return n, nil
	}
	if over := len(b.buf) + len(p) - maxOutput; over > 0 {
		b.buf = b.buf[:copy(b.buf, b.buf[over:])]
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) String() string {
	if b.truncated {
		return "[output truncated]\n" + trimPartialRune(string(b.buf))
	}
	return string(b.buf)
}

// trimPartialRune drops the tail of a UTF-8 sequence that a cut at the
// start of s left behind.
func trimPartialRune(s string) string {
	for i := 0; i < utf8.UTFMax-1 && i < len(s); i++ {
		if utf8.RuneStart(s[i]) {
			return s[i:]
		}
	}
	if len(s) >= utf8.UTFMax-1 {
		return s[utf8.UTFMax-1:]
	}
	return ""
}
