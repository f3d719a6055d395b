package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Runtime drives an OCI runtime through runc's command line. The same value
// works for runc, crun and skiff-runtime.
type Runtime struct {
	// Name labels the runtime in messages ("runc", "skiff-runtime").
	Name string
	// Bin is the path of the runtime binary.
	Bin string
	// Root is passed as --root (the runtime's state directory) unless empty.
	Root string
	// GlobalArgs go after --root and before the command (e.g. "--debug").
	GlobalArgs []string
	// Env is added to the environment of every command.
	Env []string
	// Dir is the working directory of every command; the caller's if empty.
	Dir string
}

// NewRuntime returns a Runtime for bin with a fresh state root in a
// temporary directory of the test.
func NewRuntime(t testing.TB, name, bin string) *Runtime {
	t.Helper()
	return &Runtime{Name: name, Bin: bin, Root: t.TempDir()}
}

// String returns the runtime's name.
func (r *Runtime) String() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Bin
}

// Stdio are the standard streams of a runtime command. Nil means: stdin
// from /dev/null, stdout and stderr captured into the Result. Streams given
// here are inherited by the container for create and run (terminal false).
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// Result is the outcome of a runtime command.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int   // -1 if the command did not exit normally
	Err      error // error starting or waiting for the command, or nil
}

// OK reports whether the command exited with status 0.
func (r Result) OK() bool { return r.Err == nil && r.ExitCode == 0 }

// Error returns nil if the command succeeded, else a *CmdError.
func (r Result) Error() error {
	if r.OK() {
		return nil
	}
	return &CmdError{Args: r.Args, Code: r.ExitCode, Stderr: r.Stderr, Err: r.Err}
}

// CmdError describes a runtime command that failed.
type CmdError struct {
	Args   []string
	Code   int
	Stderr string
	Err    error
}

func (e *CmdError) Error() string {
	msg := fmt.Sprintf("%s: exit code %d", strings.Join(e.Args, " "), e.Code)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Args returns the full argument vector for a runtime command, without the
// binary.
func (r *Runtime) Args(args ...string) []string {
	var all []string
	if r.Root != "" {
		all = append(all, "--root", r.Root)
	}
	all = append(all, r.GlobalArgs...)
	return append(all, args...)
}

// Command returns an unstarted command running the runtime with args. Do
// not capture the output of create or run -d through pipes (Output,
// CombinedOutput): the container inherits them and keeps them open, so the
// command would only return after its WaitDelay. Exec uses files instead.
func (r *Runtime) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.Bin, r.Args(args...)...)
	cmd.Env = append(os.Environ(), r.Env...)
	cmd.Dir = r.Dir
	// A foreground container inherits our stdio files; don't wait for it
	// forever once the runtime has exited.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs the runtime with args and the given stdio. Captured stdout and
// stderr go through temporary files, not pipes, so that a container that
// inherits them (create, run -d) never blocks the command's completion.
func (r *Runtime) Exec(ctx context.Context, stdio Stdio, args ...string) Result {
	cmd := r.Command(ctx, args...)
	res := Result{Args: append([]string{r.Bin}, cmd.Args[1:]...), ExitCode: -1}
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	capture := func() (*os.File, error) {
		f, err := os.CreateTemp("", "skiff-rt-out-")
		if err == nil {
			closers = append(closers, f)
		}
		return f, err
	}
	var outF, errF *os.File
	var err error
	cmd.Stdin = stdio.Stdin
	if stdio.Stdin == nil {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			res.Err = err
			return res
		}
		defer devnull.Close()
		cmd.Stdin = devnull
	}
	cmd.Stdout = stdio.Stdout
	if stdio.Stdout == nil {
		if outF, err = capture(); err != nil {
			res.Err = err
			return res
		}
		cmd.Stdout = outF
	}
	cmd.Stderr = stdio.Stderr
	if stdio.Stderr == nil {
		if errF, err = capture(); err != nil {
			res.Err = err
			return res
		}
		cmd.Stderr = errF
	}
	err = cmd.Run()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		res.Err = err
	}
	if outF != nil {
		b, _ := os.ReadFile(outF.Name())
		res.Stdout = string(b)
	}
	if errF != nil {
		b, _ := os.ReadFile(errF.Name())
		res.Stderr = string(b)
	}
	return res
}

// Run runs the runtime with args (stdin /dev/null) and returns its stdout,
// stderr and exit code (-1 if it did not exit normally).
func (r *Runtime) Run(ctx context.Context, args ...string) (stdout, stderr string, exitCode int) {
	res := r.Exec(ctx, Stdio{}, args...)
	if res.Err != nil && res.Stderr == "" {
		res.Stderr = res.Err.Error()
	}
	return res.Stdout, res.Stderr, res.ExitCode
}

// Create runs `create --bundle bundle [extra...] id`. The container's stdio
// is /dev/null for stdin and a discarded file for stdout and stderr; use
// Exec with a Stdio to capture what the container writes.
func (r *Runtime) Create(ctx context.Context, id, bundle string, extra ...string) error {
	args := append([]string{"create", "--bundle", bundle}, extra...)
	return r.Exec(ctx, Stdio{}, append(args, id)...).Error()
}

// Start runs `start id`.
func (r *Runtime) Start(ctx context.Context, id string) error {
	return r.Exec(ctx, Stdio{}, "start", id).Error()
}

// Kill runs `kill id signal`.
func (r *Runtime) Kill(ctx context.Context, id, signal string, extra ...string) error {
	args := append([]string{"kill"}, extra...)
	return r.Exec(ctx, Stdio{}, append(args, id, signal)...).Error()
}

// Delete runs `delete [--force] id`.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	return r.Exec(ctx, Stdio{}, append(args, id)...).Error()
}

// State is the state JSON that `runc state` prints (runtime-spec's State
// plus runc's rootfs, created and owner).
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`

	// Raw is the JSON object as printed, decoded generically, so that tests
	// can check which keys are present.
	Raw map[string]any `json:"-"`
}

// State runs `state id` and decodes its output.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	res := r.Exec(ctx, Stdio{}, "state", id)
	if err := res.Error(); err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
		return nil, fmt.Errorf("%s state %s: decode %q: %w", r, id, res.Stdout, err)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &st.Raw); err != nil {
		return nil, fmt.Errorf("%s state %s: decode %q: %w", r, id, res.Stdout, err)
	}
	return &st, nil
}

// List runs `list --format json` and decodes its output.
func (r *Runtime) List(ctx context.Context) ([]State, error) {
	res := r.Exec(ctx, Stdio{}, "list", "--format", "json")
	if err := res.Error(); err != nil {
		return nil, err
	}
	var sts []State
	if s := strings.TrimSpace(res.Stdout); s != "" && s != "null" {
		if err := json.Unmarshal([]byte(s), &sts); err != nil {
			return nil, fmt.Errorf("%s list: decode %q: %w", r, res.Stdout, err)
		}
	}
	return sts, nil
}

// WaitStatus polls `state id` until the container's status is status or
// the timeout expires, and returns the last state seen.
func (r *Runtime) WaitStatus(ctx context.Context, id, status string, timeout time.Duration) (*State, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := r.State(ctx, id)
		if err == nil && st.Status == status {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("waiting for %s of container %s: %w", status, id, err)
			}
			return st, fmt.Errorf("container %s: status %q after %v, want %q", id, st.Status, timeout, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ContainerID returns an id unique to this test and call, usable as a
// container id and as a cgroup name: a prefix of the test's name and random
// hex digits.
func ContainerID(t testing.TB) string {
	name := idUnsafe.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return strings.Trim("sk-"+strings.ToLower(name), "-.") + "-" + hex.EncodeToString(b[:])
}
