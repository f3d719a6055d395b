// Package hooks owns running the OCI lifecycle hooks (prestart,
// createRuntime, createContainer, startContainer, poststart, poststop) as
// the runtime-spec's config.md ("POSIX-platform Hooks") and runc 1.1 do:
// the hook process, the container state JSON on its stdin, its environment,
// its timeout and the capture of its output for error messages.
//
// It must not decide when hooks run, nor in which namespaces: that is the
// runtime's lifecycle (runtime/container on the host side, runtime/initproc
// inside the container). Run executes whatever it is given from the calling
// process, in that process's namespaces, working directory and credentials.
//
// How a hook is run:
//
//   - path must be absolute; it is executed as is (no $PATH search).
//   - argv is args exactly (args[0] is argv[0], which may differ from path);
//     when args is empty argv is [path].
//   - the environment is exactly env; nothing of the caller's is inherited
//     (runc, through os/exec, inherits the caller's environment when env is
//     empty; the spec says env is the hook's environment, so we pass none).
//     With duplicate keys the last one wins, as with os/exec.
//   - stdin is the state JSON (runtime.md "State"). A hook that closes its
//     stdin without reading it is not an error.
//   - stdout and stderr are captured (their last few KiB) and quoted in the
//     error when the hook fails; on success they are dropped.
//   - the hook is the leader of a new process group. When its timeout
//     expires, or ctx is cancelled, the whole group is sent SIGKILL.
//     Descendants that left the group (setsid) are out of reach.
//   - after the hook exits, Run waits at most OutputGrace for its stdout and
//     stderr to reach EOF. A hook that starts a daemon which inherits them
//     would otherwise block Run for the daemon's lifetime, which is what
//     runc 1.1 does (it reads into a bytes.Buffer through exec.Cmd with no
//     WaitDelay, so `runc create` hangs until the daemon exits). The hook's
//     own exit status decides success; the daemon is left running.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/internal/ljson"
)

// Kind names a list of hooks in config.json's "hooks" object.
type Kind string

// The hook kinds, spelled as in config.json, in the order they run in a
// container's life.
const (
	// Prestart is deprecated by the spec in favour of CreateRuntime; runc
	// runs it right before the createRuntime hooks, with the same state.
	Prestart        Kind = "prestart"
	CreateRuntime   Kind = "createRuntime"
	CreateContainer Kind = "createContainer"
	StartContainer  Kind = "startContainer"
	Poststart       Kind = "poststart"
	Poststop        Kind = "poststop"
)

// OutputGrace is how long Run keeps reading a hook's stdout and stderr after
// the hook has exited (see the package doc).
const OutputGrace = time.Second

// tailSize is how much of a hook's stdout and stderr is kept for errors.
const tailSize = 4096

// Kinds returns every hook kind, in lifecycle order.
func Kinds() []Kind {
	return []Kind{Prestart, CreateRuntime, CreateContainer, StartContainer, Poststart, Poststop}
}

// Valid reports whether k is one of the kinds of the runtime-spec.
func (k Kind) Valid() bool {
	switch k {
	case Prestart, CreateRuntime, CreateContainer, StartContainer, Poststart, Poststop:
		return true
	}
	return false
}

// Of returns the hooks of kind k in h (nil when h is nil or k unknown).
func Of(h *specs.Hooks, k Kind) []specs.Hook {
	if h == nil {
		return nil
	}
	switch k {
	case Prestart:
		return h.Prestart //nolint:staticcheck // deprecated by the spec, still honoured (runc does)
	case CreateRuntime:
		return h.CreateRuntime
	case CreateContainer:
		return h.CreateContainer
	case StartContainer:
		return h.StartContainer
	case Poststart:
		return h.Poststart
	case Poststop:
		return h.Poststop
	}
	return nil
}

// StatusFor returns the container status that the state on a hook's stdin
// carries for hooks of kind k, and "" for an unknown kind.
//
//   - prestart, createRuntime: "creating". runc 1.1 runs them from
//     `runc create` (process_linux.go, on the init's procHooks sync) with
//     s.Status = specs.StateCreating and s.Pid = the init's pid.
//   - createContainer: "creating". runc's init runs them in the container's
//     namespaces after mounting the rootfs, right before pivot_root
//     (rootfs_linux.go), with its own pid as seen there.
//   - startContainer: "created". runc's init runs them after `start` has
//     opened the exec fifo, right before exec'ing the user program
//     (standard_init_linux.go).
//   - poststart: "running". The spec runs them after the user program was
//     executed and before `start` returns. Note: runc 1.1 runs them at the
//     end of `create` instead (Container.start, while the init still waits
//     on the exec fifo), so its hooks read "created" there; a caller
//     mimicking that timing should set State.Status itself.
//   - poststop: "stopped". runc runs them from destroy (`runc delete`, or the
//     end of `runc run`) after removing the cgroup and state dir, with
//     s.Status = specs.StateStopped.
func StatusFor(k Kind) specs.ContainerState {
	switch k {
	case Prestart, CreateRuntime, CreateContainer:
		return specs.StateCreating
	case StartContainer:
		return specs.StateCreated
	case Poststart:
		return specs.StateRunning
	case Poststop:
		return specs.StateStopped
	}
	return ""
}

// Run runs the hooks of one kind in order, each with the container state JSON
// on its stdin. The first failure stops the run and is returned; hooks after
// it do not run. The caller applies the spec's rules: a failing prestart,
// createRuntime, createContainer or startContainer hook fails the operation;
// poststart and poststop failures are only logged (see RunAll, which the spec
// prefers for those two: "the remaining hooks ... continue").
//
// If state.Status is empty it is set to StatusFor(kind) in the JSON sent;
// state itself is not modified. Every hook is checked (absolute path,
// positive timeout) before any runs.
//
// Errors name the hook (kind, index, path) and wrap: errdefs.ErrInvalidArgument
// for a malformed hook or call; errdefs.ErrNotFound when the hook's binary (or
// its script interpreter) does not exist; errdefs.ErrFailedPrecondition plus
// the *exec.ExitError when it exits non-zero or is killed; and
// errdefs.ErrFailedPrecondition plus context.DeadlineExceeded when it ran past
// its timeout. When ctx is cancelled the running hook's process group is
// killed and the error wraps ctx.Err().
func Run(ctx context.Context, kind Kind, hooks []specs.Hook, state *specs.State) error {
	stdin, err := prepare(kind, hooks, state)
	if err != nil {
		return err
	}
	for i := range hooks {
		if err := runOne(ctx, kind, i, &hooks[i], stdin); err != nil {
			return err
		}
	}
	return nil
}

// RunAll is Run that does not stop at a failing hook: every hook runs, in
// order, and the failures are returned joined (errors.Join). The spec asks
// this of poststart and poststop hooks, whose failures are warnings and must
// not keep the remaining hooks from running. It stops early only when ctx is
// done. A malformed list (a relative path, a bad timeout) runs nothing.
func RunAll(ctx context.Context, kind Kind, hooks []specs.Hook, state *specs.State) error {
	stdin, err := prepare(kind, hooks, state)
	if err != nil {
		return err
	}
	var errs []error
	for i := range hooks {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("%s hooks: %d of %d not run: %w", kind, len(hooks)-i, len(hooks), err))
			break
		}
		if err := runOne(ctx, kind, i, &hooks[i], stdin); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// prepare checks the call and every hook, and returns the state JSON.
func prepare(kind Kind, hooks []specs.Hook, state *specs.State) ([]byte, error) {
	if !kind.Valid() {
		return nil, fmt.Errorf("hooks: unknown hook kind %q (want one of %v): %w", kind, Kinds(), errdefs.ErrInvalidArgument)
	}
	for i := range hooks {
		h := &hooks[i]
		if !filepath.IsAbs(h.Path) {
			return nil, fmt.Errorf("%s hook #%d: path %q is not absolute; hooks.%s[%d].path in config.json must be an absolute path on the host: %w",
				kind, i, h.Path, kind, i, errdefs.ErrInvalidArgument)
		}
		if h.Timeout != nil && *h.Timeout <= 0 {
			return nil, fmt.Errorf("%s hook #%d (%s): timeout %d is not a positive number of seconds; fix or remove hooks.%s[%d].timeout: %w",
				kind, i, h.Path, *h.Timeout, kind, i, errdefs.ErrInvalidArgument)
		}
	}
	if len(hooks) == 0 {
		return nil, nil
	}
	if state == nil {
		return nil, fmt.Errorf("%s hooks: no container state to pass on stdin: %w", kind, errdefs.ErrInvalidArgument)
	}
	s := *state
	if s.Status == "" {
		s.Status = StatusFor(kind)
	}
	b, err := ljson.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("%s hooks: encode container state: %w", kind, err)
	}
	return b, nil
}

// runOne runs hook #i of kind.
func runOne(ctx context.Context, kind Kind, i int, h *specs.Hook, stdin []byte) error {
	name := fmt.Sprintf("%s hook #%d (%s)", kind, i, h.Path)

	hctx := ctx
	var timeout time.Duration
	if h.Timeout != nil {
		timeout = time.Duration(*h.Timeout) * time.Second
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	argv := h.Args
	if len(argv) == 0 {
		argv = []string{h.Path}
	}
	env := h.Env
	if env == nil {
		env = []string{} // nil would mean "inherit ours" to os/exec
	}
	var stdout, stderr tail
	cmd := exec.CommandContext(hctx, h.Path)
	cmd.Args = argv
	cmd.Env = env
	cmd.Stdin = strings.NewReader(string(stdin))
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = OutputGrace
	cmd.Cancel = func() error { return killGroup(cmd.Process) }

	start := time.Now()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: cannot execute: %w; install it, or fix hooks.%s[%d].path in config.json (if it is a script, check its #! interpreter exists): %w",
				name, err, kind, i, errdefs.ErrNotFound)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%s: cannot execute: %w; make it an executable file: %w", name, err, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("%s: start: %w", name, err)
	}
	err := cmd.Wait()
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		// ErrWaitDelay with a zero exit: the hook left something running
		// that holds its stdout or stderr; that is its business.
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: stopped (hook process group killed) after %s: %w", name, time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	if hctx.Err() != nil {
		return fmt.Errorf("%s: timed out after %ds and was killed with its process group%s; make the hook finish sooner or raise hooks.%s[%d].timeout: %w: %w",
			name, *h.Timeout, output(&stdout, &stderr), kind, i, context.DeadlineExceeded, errdefs.ErrFailedPrecondition)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s: failed with %w%s: %w", name, ee, output(&stdout, &stderr), errdefs.ErrFailedPrecondition)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// killGroup sends SIGKILL to the process group p leads (the hook was started
// with Setpgid). os/exec calls it while waiting for the hook; if the hook has
// already been reaped it does nothing, so a reused group id is not hit (short
// of a race of microseconds between the reaping and this check).
func killGroup(p *os.Process) error {
	if err := p.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if err := unix.Kill(-p.Pid, unix.SIGKILL); err != nil {
		return p.Kill()
	}
	return nil
}

// output formats the captured tails for an error message: stderr, and stdout
// too when stderr is empty.
func output(stdout, stderr *tail) string {
	if s := stderr.String(); s != "" {
		return "; stderr: " + s
	}
	if s := stdout.String(); s != "" {
		return "; stdout: " + s
	}
	return "; no output"
}

// tail is an io.Writer keeping the last tailSize bytes written to it. os/exec
// writes to it from one goroutine and Wait returns only after that goroutine
// is done, so it needs no lock.
type tail struct {
	buf       []byte
	truncated bool
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= tailSize {
		t.buf = append(t.buf[:0], p[len(p)-tailSize:]...)
		t.truncated = true
		return n, nil
	}
	if len(t.buf)+len(p) > 2*tailSize {
		keep := t.buf[len(t.buf)-(tailSize-len(p)):]
		t.buf = append(t.buf[:0], keep...)
		t.truncated = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the kept output, trimmed, marked when its head was lost.
func (t *tail) String() string {
	b := t.buf
	cut := t.truncated
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
		cut = true
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if s == "" {
		return ""
	}
	if cut {
		s = "[...] " + s
	}
	return fmt.Sprintf("%q", s)
}
