package containers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/specgen"
	"github.com/skiff-containers/skiff/shim/client"
)

// ExecOptions describe a process to run in a running container (docker
// exec's flags).
type ExecOptions struct {
	Cmd []string
	// Env: NAME=value entries laid over the container's environment.
	Env []string
	// User replaces the container's user (docker's -u syntax).
	User string
	// WorkingDir replaces the container's working directory; absolute.
	WorkingDir string
	Tty        bool
	// Detach starts the process and returns; its output is dropped.
	Detach bool
	// Width and Height are the terminal's initial size (with Tty).
	Width, Height uint16
	// Stdin, if not nil, is copied to the process's stdin; its end closes
	// it (with a terminal: ^D).
	Stdin io.Reader
	// Stdout and Stderr receive the output (nil: discarded). With a
	// terminal everything comes on Stdout.
	Stdout, Stderr io.Writer
}

// ExecProcess is a process started by Exec.
type ExecProcess struct {
	// ID names the exec; Pid is its host pid.
	ID  string
	Pid int
	a   *client.Attachment
	ref string
	// died publishes the exec's exit (exec_die) once Wait learns it.
	died func(ExitStatus)
}

// Exec runs a process in the running container idOrName through its shim,
// which owns it: it survives the engine, and the caller's going away
// (Close) leaves it running, as docker's exec. A container that does not
// run is a *StateError (docker's "container X is not running"); a program
// the runtime cannot run is an error with docker's exit code (126, 127).
func (s *Service) Exec(ctx context.Context, ns, idOrName string, o ExecOptions) (*ExecProcess, error) {
	if len(o.Cmd) == 0 || o.Cmd[0] == "" {
		return nil, fmt.Errorf("exec in container %s: no command given: %w", idOrName, errdefs.ErrInvalidArgument)
	}
	if o.WorkingDir != "" && !filepath.IsAbs(o.WorkingDir) {
		return nil, fmt.Errorf("exec in container %s: the working directory %q must be an absolute path: %w", idOrName, o.WorkingDir, errdefs.ErrInvalidArgument)
	}
	if err := checkExecEnv(o.Env); err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", idOrName, err)
	}
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return nil, err
	}
	defer c.op.Unlock()
	if err := check(idOrName, opExec, status(rec)); err != nil {
		return nil, err
	}
	cl := c.getShim()
	if cl == nil {
		return nil, fmt.Errorf("exec in container %s: no shim holds it; restart skiffd to recover it", idOrName)
	}
	var spec specs.Spec
	if err := json.Unmarshal(rec.Spec, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("exec in container %s: its runtime spec has no process (%v): %w", idOrName, err, errdefs.ErrFailedPrecondition)
	}
	p, err := s.execProcess(ns, rec.ID, rec.Image, *spec.Process, o)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", idOrName, err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: encode the process: %w", idOrName, err)
	}
	id := newExecID()
	file := filepath.Join(s.shimDir(ns, rec.ID), "exec-"+id+".json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return nil, fmt.Errorf("exec in container %s: write the process file: %w", idOrName, err)
	}
	defer os.Remove(file) // the shim removes it once read; this is for a failed request
	co := client.ExecOptions{ID: id, ProcessFile: file, Terminal: o.Tty, Width: o.Width, Height: o.Height}
	if !o.Detach {
		co.Stdin, co.Stdout, co.Stderr = o.Stdin, o.Stdout, o.Stderr
	}
	a, pid, err := cl.Exec(context.WithoutCancel(ctx), co)
	if err != nil {
		if startExitCode(err) != 0 {
			err, _, _ = startError("exec in", idOrName, err)
			return nil, err
		}
		return nil, fmt.Errorf("exec in container %s: %w", idOrName, err)
	}
	s.log.Info("exec started", "namespace", ns, "id", rec.ID, "exec", id, "pid", pid, "cmd", o.Cmd[0], "tty", o.Tty, "detach", o.Detach)
	s.publishExec(ns, rec, evExecCreate, id, o.Cmd, nil)
	s.publishExec(ns, rec, evExecStart, id, o.Cmd, nil)
	ep := &ExecProcess{ID: id, Pid: pid, a: a, ref: idOrName, died: func(e ExitStatus) {
		s.publishExec(ns, rec, evExecDie, id, nil, map[string]string{"exitCode": strconv.Itoa(e.Code)})
	}}
	if o.Detach {
		// Nobody waits for a detached exec: keep its stream (it carries
		// no output, only the exit) to publish exec_die, as docker does.
		ep.a = nil
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer a.Close()
			if e, err := a.Wait(s.ctx); err == nil && e != nil {
				ep.died(exitStatus(e))
			}
		}()
	}
	return ep, nil
}

// execProcess builds the exec's process from the container's: its
// capabilities, rlimits, security settings, environment, user and
// working directory, with o's command, terminal and overrides.
func (s *Service) execProcess(ns, id, image string, p specs.Process, o ExecOptions) (*specs.Process, error) {
	p.Args = append([]string(nil), o.Cmd...)
	p.Terminal = o.Tty
	p.ConsoleSize = nil
	if o.Tty && o.Width > 0 && o.Height > 0 {
		p.ConsoleSize = &specs.Box{Width: uint(o.Width), Height: uint(o.Height)}
	}
	env := append([]string(nil), p.Env...)
	if o.Tty {
		env = setEnv(env, "TERM=xterm", false)
	}
	for _, e := range o.Env {
		env = setEnv(env, e, true)
	}
	p.Env = env
	if o.WorkingDir != "" {
		p.Cwd = o.WorkingDir
	}
	if o.User != "" {
		u, err := specgen.ResolveUser(s.rootfsDir(ns, id), o.User, image)
		if err != nil {
			return nil, err
		}
		p.User = u
	}
	return &p, nil
}

// setEnv sets e (NAME=value) in env, replacing an entry of the same name
// if replace, else only adding it if absent; a bare NAME removes it.
func setEnv(env []string, e string, replace bool) []string {
	name, _, hasValue := strings.Cut(e, "=")
	for i, cur := range env {
		if n, _, _ := strings.Cut(cur, "="); n == name {
			switch {
			case !hasValue:
				return append(env[:i:i], env[i+1:]...)
			case replace:
				env[i] = e
			}
			return env
		}
	}
	if hasValue {
		env = append(env, e)
	}
	return env
}

func checkExecEnv(env []string) error {
	for _, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == "" || strings.ContainsAny(e, "\x00") {
			return fmt.Errorf("invalid environment variable %q: %w", e, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// newExecID returns a random exec id.
func newExecID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Resize sets the size of the process's terminal.
func (p *ExecProcess) Resize(width, height uint16) error {
	if p.a == nil {
		return nil
	}
	return p.a.Resize(width, height)
}

// CloseStdin closes the process's stdin (with a terminal: sends ^D).
func (p *ExecProcess) CloseStdin() error {
	if p.a == nil {
		return nil
	}
	return p.a.CloseStdin()
}

// Wait blocks until the process has exited and its output is drained and
// returns its exit status; nil if the stream ended otherwise (Close, the
// shim went away, or a detached exec).
func (p *ExecProcess) Wait(ctx context.Context) (*ExitStatus, error) {
	if p.a == nil {
		return nil, nil
	}
	e, err := p.a.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("exec %s in container %s: %w", p.ID, p.ref, err)
	}
	if e == nil {
		return nil, nil
	}
	st := exitStatus(e)
	if died := p.died; died != nil {
		p.died = nil // once
		died(st)
	}
	return &st, nil
}

// Close ends the stream; the process keeps running.
func (p *ExecProcess) Close() error {
	if p.a == nil {
		return nil
	}
	return p.a.Close()
}
