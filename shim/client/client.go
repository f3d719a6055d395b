// Package client is the engine's side of skiff-shim: Spawn starts a shim
// for a container and returns once the container is created; Connect
// reaches the shim of a container again later (after an engine restart, by
// its state directory); the methods of Client are the shim's requests (see
// package shim/proto for the wire format). Every request uses a connection
// of its own, so a Client may be used concurrently and a blocked Wait does
// not delay a Kill.
//
// When the shim is gone (its socket is missing or refuses connections),
// requests fail with an error of class errdefs.ErrNotFound; the engine then
// reads the exit file (ReadExit) and asks the runtime for the container's
// state.
package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/proto"
)

// Options say how to spawn a shim; they are its command-line flags.
type Options struct {
	// Binary is the skiff-shim executable (a path, or a name on PATH).
	Binary      string
	ID          string
	Bundle      string
	Runtime     string
	RuntimeRoot string
	RuntimeArgs []string
	StateDir    string
	LogPath     string
	Terminal    bool
	Stdin       bool
	Debug       bool
	// ParkAfter is the shim's --park-after: 0 leaves the shim's default
	// (5s), a negative duration never parks.
	ParkAfter time.Duration
}

// Args returns the shim's command line for o, without the binary.
func (o Options) Args() []string {
	args := []string{"--id", o.ID, "--bundle", o.Bundle, "--runtime", o.Runtime, "--state", o.StateDir, "--log", o.LogPath}
	if o.RuntimeRoot != "" {
		args = append(args, "--runtime-root", o.RuntimeRoot)
	}
	for _, a := range o.RuntimeArgs {
		args = append(args, "--runtime-arg", a)
	}
	if o.Terminal {
		args = append(args, "--tty")
	}
	if o.Stdin {
		args = append(args, "--stdin")
	}
	if o.Debug {
		args = append(args, "--debug")
	}
	switch {
	case o.ParkAfter > 0:
		args = append(args, "--park-after", o.ParkAfter.String())
	case o.ParkAfter < 0:
		args = append(args, "--park-after", "0")
	}
	return args
}

// Ready is what a shim reports once its container is created.
type Ready struct {
	ShimPid int
	Pid     int // the container's init
}

// ParseReadyLine parses the shim's one line: "ready <shim-pid> <init-pid>"
// or "error <class> <message>" (returned as an error of that class).
func ParseReadyLine(id, line string) (Ready, error) {
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "ready "):
		f := strings.Fields(line)
		if len(f) == 3 {
			shimPid, err1 := strconv.Atoi(f[1])
			pid, err2 := strconv.Atoi(f[2])
			if err1 == nil && err2 == nil {
				return Ready{ShimPid: shimPid, Pid: pid}, nil
			}
		}
	case strings.HasPrefix(line, "error "):
		class, msg, _ := strings.Cut(strings.TrimPrefix(line, "error "), " ")
		return Ready{}, proto.Response{Error: msg, Class: class}.Err()
	}
	return Ready{}, fmt.Errorf("spawn shim for container %s: unexpected line %q from the shim (want \"ready …\" or \"error …\")", id, line)
}

// Spawn runs the shim and waits for its readiness line: on success the
// container is created (not started) and the shim is detached from the
// caller. The shim's launcher process exits right after; the shim itself is
// not the caller's child.
func Spawn(ctx context.Context, o Options) (*Client, Ready, error) {
	bin := o.Binary
	if bin == "" {
		bin = "skiff-shim"
	}
	cmd := exec.CommandContext(ctx, bin, o.Args()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, Ready{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, Ready{}, fmt.Errorf("spawn shim for container %s: %w (is skiff-shim installed? pass its path)", o.ID, err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if line == "" {
		return nil, Ready{}, fmt.Errorf("spawn shim for container %s: no readiness line (%v): %s", o.ID, werr, strings.TrimSpace(stderr.String()))
	}
	ready, err := ParseReadyLine(o.ID, line)
	if err != nil {
		return nil, Ready{}, err
	}
	return New(o.ID, o.StateDir), ready, nil
}

// Client talks to one shim.
type Client struct {
	id       string
	stateDir string
}

// New returns a client of the shim whose state directory is stateDir; it
// does not connect (see Connect).
func New(id, stateDir string) *Client { return &Client{id: id, stateDir: stateDir} }

// Connect returns a client of the shim serving stateDir, after checking
// that it answers.
func Connect(ctx context.Context, id, stateDir string) (*Client, error) {
	c := New(id, stateDir)
	if _, err := c.State(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// SocketPath is the shim's control socket.
func (c *Client) SocketPath() string { return filepath.Join(c.stateDir, proto.SocketName) }

// ReadExit reads the exit file of the state directory: the exit status the
// shim recorded, or an error of class errdefs.ErrNotFound.
func (c *Client) ReadExit() (*proto.Exit, error) { return proto.ReadExitFile(c.stateDir) }

// dial connects to the shim; a missing or dead shim is ErrNotFound.
func (c *Client) dial(ctx context.Context) (*net.UnixConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.SocketPath())
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("container %s: shim is gone (socket %s: %v): %w; read its exit file or ask the runtime", c.id, c.SocketPath(), err, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("container %s: connect to shim: %w", c.id, err)
	}
	return conn.(*net.UnixConn), nil
}

// roundTrip sends req on a new connection and returns the connection,
// positioned after the response, and the response.
func (c *Client) roundTrip(ctx context.Context, req proto.Request) (*net.UnixConn, *bufio.Reader, proto.Response, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, proto.Response{}, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	data, _ := json.Marshal(req)
	if _, err := conn.Write(append(data, '\n')); err != nil {
		conn.Close()
		return nil, nil, proto.Response{}, c.connErr(ctx, req.Op, err)
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, nil, proto.Response{}, c.connErr(ctx, req.Op, err)
	}
	var resp proto.Response
	if err := json.Unmarshal(line, &resp); err != nil {
		conn.Close()
		return nil, nil, proto.Response{}, fmt.Errorf("container %s: %s: malformed response from shim: %w", c.id, req.Op, err)
	}
	return conn, br, resp, resp.Err()
}

func (c *Client) connErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("container %s: %s: %w", c.id, op, ctx.Err())
	}
	return fmt.Errorf("container %s: %s: the shim closed the connection (%v): %w; it may have died, read the exit file", c.id, op, err, errdefs.ErrNotFound)
}

func (c *Client) call(ctx context.Context, req proto.Request) (proto.Response, error) {
	conn, _, resp, err := c.roundTrip(ctx, req)
	if conn != nil {
		conn.Close()
	}
	return resp, err
}

// State returns the container's state as the shim knows it.
func (c *Client) State(ctx context.Context) (*proto.State, error) {
	resp, err := c.call(ctx, proto.Request{Op: proto.OpState})
	if err != nil {
		return nil, err
	}
	if resp.State == nil {
		return nil, fmt.Errorf("container %s: state: the shim sent no state", c.id)
	}
	return resp.State, nil
}

// Start starts the container's process (runtime start).
func (c *Client) Start(ctx context.Context) error {
	_, err := c.call(ctx, proto.Request{Op: proto.OpStart})
	return err
}

// Kill signals the container's init, or with all every process of it.
func (c *Client) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := c.call(ctx, proto.Request{Op: proto.OpKill, Signal: int(sig), All: all})
	return err
}

// Wait blocks until the container has exited and returns its exit status.
func (c *Client) Wait(ctx context.Context) (*proto.Exit, error) {
	resp, err := c.call(ctx, proto.Request{Op: proto.OpWait})
	if err != nil {
		return nil, err
	}
	if resp.Exit == nil {
		return nil, fmt.Errorf("container %s: wait: the shim sent no exit status", c.id)
	}
	return resp.Exit, nil
}

// CloseStdin closes the container's stdin (with a terminal: sends ^D).
func (c *Client) CloseStdin(ctx context.Context) error {
	_, err := c.call(ctx, proto.Request{Op: proto.OpCloseStdin})
	return err
}

// Resize sets the size of the container's terminal.
func (c *Client) Resize(ctx context.Context, width, height uint16) error {
	_, err := c.call(ctx, proto.Request{Op: proto.OpResize, Resize: &proto.Resize{Width: width, Height: height}})
	return err
}

// Delete deletes the container in the runtime; the shim then exits. A
// running container needs force.
func (c *Client) Delete(ctx context.Context, force bool) (*proto.State, error) {
	resp, err := c.call(ctx, proto.Request{Op: proto.OpDelete, Force: force})
	return resp.State, err
}

// Shutdown makes the shim exit without deleting the container; one that
// has not exited needs force.
func (c *Client) Shutdown(ctx context.Context, force bool) error {
	_, err := c.call(ctx, proto.Request{Op: proto.OpShutdown, Force: force})
	return err
}

// AttachOptions say which streams to attach.
type AttachOptions struct {
	// Stdin, if not nil, is copied to the container's stdin (the shim must
	// have --stdin).
	Stdin io.Reader
	// CloseStdinOnEOF closes the container's stdin when Stdin ends.
	CloseStdinOnEOF bool
	// Stdout and Stderr receive the output (nil: discarded). With a
	// terminal everything comes on Stdout.
	Stdout, Stderr io.Writer
}

// Attachment is a live attach stream.
type Attachment struct {
	conn *net.UnixConn
	wmu  sync.Mutex
	done chan struct{}
	exit *proto.Exit
	err  error
	// State is the container's state when the attach began.
	State *proto.State
}

// Attach streams the container's output from now on (earlier output is in
// the log) and, optionally, sends input. The stream ends when the
// container has exited and its output is drained (Wait then returns the
// exit status), or on Close.
func (c *Client) Attach(ctx context.Context, o AttachOptions) (*Attachment, error) {
	conn, br, resp, err := c.roundTrip(ctx, proto.Request{Op: proto.OpAttach, Stdin: o.Stdin != nil, CloseStdinOnEOF: o.CloseStdinOnEOF})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	a := &Attachment{conn: conn, done: make(chan struct{}), State: resp.State}
	go a.readOutput(br, o.Stdout, o.Stderr)
	if o.Stdin != nil {
		go a.copyInput(o.Stdin)
	}
	return a, nil
}

func (a *Attachment) readOutput(br *bufio.Reader, stdout, stderr io.Writer) {
	defer close(a.done)
	defer a.conn.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	buf := make([]byte, 0, 32<<10)
	for {
		typ, payload, err := proto.ReadFrame(br, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				a.err = err
			}
			return
		}
		switch typ {
		case proto.FrameStdout:
			stdout.Write(payload)
		case proto.FrameStderr:
			stderr.Write(payload)
		case proto.FrameExit:
			var e proto.Exit
			if err := json.Unmarshal(payload, &e); err != nil {
				a.err = err
				return
			}
			a.exit = &e
			// The exit frame is the stream's last. Stop reading: the
			// shim closes the connection next, and input of ours still
			// unread there makes that close a reset, not an end.
			return
		}
	}
}

func (a *Attachment) copyInput(in io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if a.send(proto.FrameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			// Only the input's end closes the container's stdin; an
			// input that failed (a client that went away, or detached)
			// leaves it open.
			if errors.Is(err, io.EOF) {
				a.send(proto.FrameStdinEOF, nil)
			}
			return
		}
	}
}

func (a *Attachment) send(typ byte, payload []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return proto.WriteFrame(a.conn, typ, payload)
}

// Resize sets the container's terminal size through the stream.
func (a *Attachment) Resize(width, height uint16) error {
	data, _ := json.Marshal(proto.Resize{Width: width, Height: height})
	return a.send(proto.FrameResize, data)
}

// Wait blocks until the stream ends and returns the exit status if the
// container exited while attached (nil if the stream ended otherwise).
func (a *Attachment) Wait(ctx context.Context) (*proto.Exit, error) {
	select {
	case <-a.done:
		return a.exit, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close ends the stream; the container is not affected.
func (a *Attachment) Close() error {
	err := a.conn.Close()
	<-a.done
	return err
}

// Pause freezes the container's processes (runtime pause); State then
// says paused.
func (c *Client) Pause(ctx context.Context) error {
	_, err := c.call(ctx, proto.Request{Op: proto.OpPause})
	return err
}

// Resume thaws a paused container (runtime resume).
func (c *Client) Resume(ctx context.Context) error {
	_, err := c.call(ctx, proto.Request{Op: proto.OpResume})
	return err
}

// ExecOptions describe a process to run in the container.
type ExecOptions struct {
	// ID names the exec (letters, digits, '-', '_', '.'), unique among the
	// container's running execs.
	ID string
	// ProcessFile is the absolute path of the process's runtime-spec
	// process.json; the shim removes it once the runtime has read it.
	ProcessFile string
	// Terminal gives the process a pty (the process must have terminal
	// true); Width and Height are its initial size (0: the default).
	Terminal      bool
	Width, Height uint16
	// Stdin, if not nil, is copied to the process's stdin; its end (EOF)
	// closes the process's stdin (with a terminal: sends ^D).
	Stdin io.Reader
	// Stdout and Stderr receive the output (nil: discarded). With a
	// terminal everything comes on Stdout.
	Stdout, Stderr io.Writer
}

// Exec starts a process in the running container through the shim, which
// owns it (it survives the engine), and streams its stdio. The returned
// Attachment's Wait returns the process's exit status; Close leaves the
// process running. A runtime that cannot start the process is an error
// of class errdefs.ErrFailedPrecondition carrying the runtime's message.
func (c *Client) Exec(ctx context.Context, o ExecOptions) (*Attachment, int, error) {
	req := proto.Request{Op: proto.OpExec, ExecID: o.ID, Process: o.ProcessFile, Terminal: o.Terminal, Stdin: o.Stdin != nil}
	if o.Width > 0 && o.Height > 0 {
		req.Resize = &proto.Resize{Width: o.Width, Height: o.Height}
	}
	conn, br, resp, err := c.roundTrip(ctx, req)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, 0, err
	}
	a := &Attachment{conn: conn, done: make(chan struct{})}
	go a.readOutput(br, o.Stdout, o.Stderr)
	if o.Stdin != nil {
		go a.copyInput(o.Stdin)
	}
	return a, resp.Pid, nil
}

// CloseStdin ends the input of the attached process (FrameStdinEOF): for
// an exec, its stdin is closed (with a terminal: ^D is sent).
func (a *Attachment) CloseStdin() error { return a.send(proto.FrameStdinEOF, nil) }

// ErrGone reports whether err means the shim is gone (errdefs class not
// found), so that the engine should fall back on the exit file and the
// runtime's state.
func ErrGone(err error) bool { return errdefs.IsNotFound(err) }
