package wire

import (
	"strconv"
	"syscall"

	"github.com/skiff-containers/skiff/internal/jsonstr"
)

// ExitFileName is the exit file's name in the shim's state directory
// (proto.ExitFileName).
const ExitFileName = "exit"

// Container statuses (proto.StatusCreated, …).
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusStopped = "stopped"
	StatusPaused  = "paused"
)

// Exit is proto.Exit: the container's exit status, and when it was
// recorded (seconds and nanoseconds since the Unix epoch).
type Exit struct {
	Code   int
	Signal int
	Sec    int64
	Nsec   int
}

// ExitOf returns the Exit of a wait status: the exit code, or 128+signal
// and the signal if a signal killed the process; exited at sec.nsec.
func ExitOf(ws syscall.WaitStatus, sec int64, nsec int) Exit {
	e := Exit{Code: ws.ExitStatus(), Sec: sec, Nsec: nsec}
	if ws.Signaled() {
		e.Signal = int(ws.Signal())
		e.Code = 128 + e.Signal
	}
	return e
}

// AppendJSON appends e as encoding/json marshals a proto.Exit.
func (e *Exit) AppendJSON(b []byte) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	if e.Signal != 0 {
		b = append(b, `,"signal":`...)
		b = strconv.AppendInt(b, int64(e.Signal), 10)
	}
	b = append(b, `,"exitedAt":"`...)
	b = AppendRFC3339(b, e.Sec, e.Nsec, false)
	return append(b, `"}`...)
}

// State is proto.State.
type State struct {
	ID       string
	Pid      int
	ShimPid  int
	Status   string
	Bundle   string
	Terminal bool
	Stdin    bool
	Exit     *Exit
}

// AppendJSON appends s as encoding/json marshals a proto.State.
func (s *State) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, s.ID)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(s.Pid), 10)
	b = append(b, `,"shimPid":`...)
	b = strconv.AppendInt(b, int64(s.ShimPid), 10)
	b = append(b, `,"status":`...)
	b = jsonstr.Append(b, s.Status)
	b = append(b, `,"bundle":`...)
	b = jsonstr.Append(b, s.Bundle)
	b = append(b, `,"terminal":`...)
	b = strconv.AppendBool(b, s.Terminal)
	b = append(b, `,"stdin":`...)
	b = strconv.AppendBool(b, s.Stdin)
	if s.Exit != nil {
		b = append(b, `,"exit":`...)
		b = s.Exit.AppendJSON(b)
	}
	return append(b, '}')
}

// PathError is a failed system call on a file: "op path: err".
type PathError struct {
	Op, Path string
	Err      error
}

func (e *PathError) Error() string { return e.Op + " " + e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// WriteExitFile writes e to dir/exit atomically, as proto.WriteExitFile
// does: a temporary file in dir (mode 0644), fsync, rename, fsync of dir.
// A reader sees either no file or all of it.
func WriteExitFile(dir string, e *Exit) error {
	data := append(e.AppendJSON(nil), '\n')
	var tmp string
	var fd int
	var err error
	for try := 0; ; try++ {
		tmp = dir + "/.exit-" + strconv.Itoa(syscall.Getpid()) + "-" + strconv.Itoa(try)
		fd, err = syscall.Open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o644)
		if err != syscall.EEXIST || try == 100 {
			break
		}
	}
	if err != nil {
		return &PathError{"create", tmp, err}
	}
	fail := func(op, path string, err error) error {
		syscall.Unlink(tmp)
		return &PathError{op, path, err}
	}
	for len(data) > 0 {
		n, werr := syscall.Write(fd, data)
		if werr == syscall.EINTR {
			continue
		}
		if werr != nil {
			syscall.Close(fd)
			return fail("write", tmp, werr)
		}
		data = data[n:]
	}
	if err := syscall.Fsync(fd); err != nil {
		syscall.Close(fd)
		return fail("fsync", tmp, err)
	}
	if err := syscall.Close(fd); err != nil {
		return fail("close", tmp, err)
	}
	// The umask may have narrowed O_CREAT's mode.
	if err := syscall.Chmod(tmp, 0o644); err != nil {
		return fail("chmod", tmp, err)
	}
	if err := syscall.Rename(tmp, dir+"/"+ExitFileName); err != nil {
		return fail("rename", tmp, err)
	}
	if d, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0); err == nil {
		syscall.Fsync(d)
		syscall.Close(d)
	}
	return nil
}
