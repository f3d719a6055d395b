// Package proto is the wire contract between skiff-shim and its clients
// (the engine, through shim/client): the JSON messages of the control
// socket, the binary frames of an attach stream, the exit file, and the
// mapping of error classes to and from errdefs. It is shared by both sides
// so that they cannot drift apart, and imports nothing of skiff's but
// errdefs.
//
// # Control socket
//
// Each connection to <state>/shim.sock carries one request: the client
// writes one JSON Request on one line; the shim answers with one JSON
// Response on one line. For every op but "attach" the shim then closes the
// connection. A client may hold any number of connections at once (a
// blocked "wait" does not hold up a "kill").
//
// For "attach", after a successful Response the connection carries Frames
// in both directions until the container has exited and its output is
// drained (the shim then sends FrameExit and closes) or either side closes.
//
// For "exec", the shim runs the runtime's exec (detached, with pipes or a
// pty of its own) and answers once the process runs (Response.Pid) or the
// runtime failed; the connection then carries that process's Frames as an
// attach does, ending with FrameExit carrying its exit status. The process
// belongs to the shim, not to the connection: a client that closes early
// leaves it running (its output is then dropped), and it survives the
// engine. Unlike attach, output is not dropped for a slow client: the
// process waits.
//
// # Frames
//
// A frame is a 5-byte header, the type (one byte) and the length of the
// payload (uint32, big endian), followed by the payload, at most
// MaxFramePayload bytes. The shim sends FrameStdout, FrameStderr (raw bytes
// as the container wrote them; with a terminal everything is FrameStdout)
// and, last, FrameExit (an Exit as JSON). The client sends FrameStdin (raw
// bytes), FrameStdinEOF (empty; the end of the client's input) and
// FrameResize (a Resize as JSON).
package proto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// File names inside the shim's --state directory.
const (
	// SocketName is the control socket (mode 0600).
	SocketName = "shim.sock"
	// ExitFileName holds the container's Exit as JSON once it has exited;
	// it is written atomically (temporary file, fsync, rename).
	ExitFileName = "exit"
	// ShimLogName is the shim's own structured log (log/slog, text), which
	// also receives the shim's stderr (a panic lands there).
	ShimLogName = "shim.log"
	// PidFileName is the container init's pid as the runtime wrote it
	// (--pid-file of create).
	PidFileName = "init.pid"
	// RuntimeLogName is the runtime's own log (its --log, JSON), from which
	// the shim takes the runtime's error messages.
	RuntimeLogName = "runtime.log"
)

// Ops of a Request.
const (
	OpState      = "state"       // → Response.State
	OpStart      = "start"       // runtime start
	OpKill       = "kill"        // runtime kill [--all] ID Signal
	OpWait       = "wait"        // blocks until the exit is recorded → Response.Exit
	OpAttach     = "attach"      // then frames (see the package doc)
	OpCloseStdin = "close-stdin" // close the container's stdin (^D with a terminal)
	OpResize     = "resize"      // set the terminal's size
	OpDelete     = "delete"      // runtime delete; then the shim exits
	OpShutdown   = "shutdown"    // the shim exits, leaving the container to the runtime
	OpExec       = "exec"        // runtime exec of a new process; then frames (see the package doc)
	OpPause      = "pause"       // runtime pause (freeze every process)
	OpResume     = "resume"      // runtime resume
)

// Request is the one message a client sends on a new connection.
type Request struct {
	Op string `json:"op"`
	// Signal (kill) is a number; 0 means SIGTERM.
	Signal int `json:"signal,omitempty"`
	// All (kill) signals every process of the container (runtime kill --all).
	All bool `json:"all,omitempty"`
	// Force (delete) deletes a container that is still running (runtime
	// delete --force, which kills it); (shutdown) lets the shim exit while
	// the container still runs.
	Force bool `json:"force,omitempty"`
	// Stdin (attach) asks to send input; the shim must have been spawned
	// with --stdin.
	Stdin bool `json:"stdin,omitempty"`
	// CloseStdinOnEOF (attach) closes the container's stdin when this
	// client sends FrameStdinEOF (docker's StdinOnce).
	CloseStdinOnEOF bool `json:"closeStdinOnEOF,omitempty"`
	// Resize (resize) is the new size of the terminal; (exec) the initial
	// size of the exec's terminal.
	Resize *Resize `json:"resize,omitempty"`
	// ExecID (exec) names the process, for the shim's log and its files;
	// letters, digits, '-', '_' and '.'.
	ExecID string `json:"execId,omitempty"`
	// Process (exec) is the absolute path of the process's runtime-spec
	// process.json (the runtime's exec --process); the shim removes it
	// once the runtime has read it.
	Process string `json:"process,omitempty"`
	// Terminal (exec) gives the process a pty (process.json must have
	// terminal true); Stdin (exec) a stdin the client writes to.
	Terminal bool `json:"terminal,omitempty"`
}

// Resize is a terminal size in character cells.
type Resize struct {
	Width  uint16 `json:"width"`
	Height uint16 `json:"height"`
}

// Container statuses, as in the OCI state.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusStopped = "stopped"
	// StatusPaused is a running container the runtime has frozen (pause).
	StatusPaused = "paused"
)

// State is what the shim knows of its container.
type State struct {
	ID string `json:"id"`
	// Pid is the host pid of the container's init.
	Pid int `json:"pid"`
	// ShimPid is the shim's own pid.
	ShimPid  int    `json:"shimPid"`
	Status   string `json:"status"`
	Bundle   string `json:"bundle"`
	Terminal bool   `json:"terminal"`
	Stdin    bool   `json:"stdin"`
	// Exit is set once the container has exited (Status is stopped).
	Exit *Exit `json:"exit,omitempty"`
}

// Exit is the container's exit status, as in the exit file.
type Exit struct {
	// Code is the exit status, or 128+signal if the init was killed by a
	// signal (the shell's and docker's convention).
	Code int `json:"code"`
	// Signal is the signal that killed the init, if one did.
	Signal   int       `json:"signal,omitempty"`
	ExitedAt time.Time `json:"exitedAt"`
}

// Response answers a Request. Error is empty on success.
type Response struct {
	Error string `json:"error,omitempty"`
	// Class names the errdefs class of Error (see ErrorClass).
	Class string `json:"class,omitempty"`
	State *State `json:"state,omitempty"`
	Exit  *Exit  `json:"exit,omitempty"`
	// Pid (exec) is the host pid of the exec'd process.
	Pid int `json:"pid,omitempty"`
}

// Error classes of a Response.
const (
	ClassNotFound           = "not-found"
	ClassAlreadyExists      = "already-exists"
	ClassInvalidArgument    = "invalid-argument"
	ClassFailedPrecondition = "failed-precondition"
	ClassNotImplemented     = "not-implemented"
	ClassInternal           = "internal"
)

var classes = []struct {
	name string
	err  error
}{
	{ClassNotFound, errdefs.ErrNotFound},
	{ClassAlreadyExists, errdefs.ErrAlreadyExists},
	{ClassInvalidArgument, errdefs.ErrInvalidArgument},
	{ClassFailedPrecondition, errdefs.ErrFailedPrecondition},
	{ClassNotImplemented, errdefs.ErrNotImplemented},
}

// ErrorResponse returns the Response that carries err.
func ErrorResponse(err error) Response {
	r := Response{Error: err.Error(), Class: ClassInternal}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			r.Class = c.name
			break
		}
	}
	return r
}

// Err returns the error a Response carries, of its errdefs class, or nil.
func (r Response) Err() error {
	if r.Error == "" {
		return nil
	}
	for _, c := range classes {
		if r.Class == c.name {
			return &remoteError{msg: r.Error, class: c.err}
		}
	}
	return errors.New(r.Error)
}

// remoteError is an error received from the shim: its message is the
// shim's, and errors.Is matches its class.
type remoteError struct {
	msg   string
	class error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.class }

// Frame types of an attach stream.
const (
	FrameStdout   byte = 1 // shim → client
	FrameStderr   byte = 2 // shim → client
	FrameExit     byte = 3 // shim → client, JSON Exit, last frame
	FrameStdin    byte = 4 // client → shim
	FrameStdinEOF byte = 5 // client → shim, empty
	FrameResize   byte = 6 // client → shim, JSON Resize
)

// MaxFramePayload bounds a frame's payload; a larger one is a protocol
// error.
const MaxFramePayload = 64 << 10

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFramePayload {
		return fmt.Errorf("%w: attach frame of %d bytes exceeds %d", errdefs.ErrInvalidArgument, len(payload), MaxFramePayload)
	}
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if len(payload) == 0 {
		_, err := w.Write(hdr[:])
		return err
	}
	// One write, so that frames from concurrent writers cannot interleave
	// when the caller serialises whole calls.
	buf := make([]byte, 0, len(hdr)+len(payload))
	buf = append(append(buf, hdr[:]...), payload...)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame; buf is reused for the payload when it is large
// enough. io.EOF means the stream ended cleanly between frames.
func ReadFrame(r io.Reader, buf []byte) (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFramePayload {
		return 0, nil, fmt.Errorf("%w: attach frame of %d bytes exceeds %d", errdefs.ErrInvalidArgument, n, MaxFramePayload)
	}
	if int(n) > cap(buf) {
		buf = make([]byte, n)
	}
	payload = buf[:n]
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], payload, nil
}

// WriteExitFile writes e to dir/exit atomically: a temporary file in dir,
// fsync, rename, fsync of dir. A reader sees either no file or all of it.
func WriteExitFile(dir string, e Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".exit-*")
	if err != nil {
		return fmt.Errorf("write exit file in %s: %w", dir, err)
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, ExitFileName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write exit file in %s: %w", dir, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ReadExitFile reads dir/exit. A missing file is an errdefs.ErrNotFound:
// the container has not exited, or its shim died before recording it.
func ReadExitFile(dir string) (*Exit, error) {
	data, err := os.ReadFile(filepath.Join(dir, ExitFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read exit file %s: %w: no exit recorded (the container runs, or its shim died first)", filepath.Join(dir, ExitFileName), errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read exit file: %w", err)
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("read exit file %s: %w: %w", filepath.Join(dir, ExitFileName), errdefs.ErrInvalidArgument, err)
	}
	return &e, nil
}
