package wire

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Env carries Parked, encoded, across the execve, in both directions. It
// is an environment variable, not an argument, because unfinished log
// lines are container output: /proc/PID/environ is readable by root
// only, /proc/PID/cmdline by everyone.
const Env = "_SKIFF_SHIM_PARKED"

// Parked is what one of skiff-shim's processes hands the other across
// execve: the monitor to the idle monitor when it parks, and the idle
// monitor back to the monitor when a request needs more than it serves.
// The fds are inherited (not close-on-exec); -1 means none.
type Parked struct {
	// The container, as the shim's flags gave it.
	ID, Bundle, StateDir string
	Terminal, Stdin      bool
	Debug                bool

	Pid                    int // the container's init
	Started, Paused        bool
	StdinClosed            bool
	Exit                   *Exit  // once recorded
	Listener               int    // the control socket
	Log                    int    // the container log (O_APPEND)
	Out, Err               int    // the output's read ends; with a terminal Out is the pty master
	In                     int    // the write end of the container's stdin pipe
	OutEnded               bool   // with a terminal: the output ended (the master stays, for input)
	OutPending, ErrPending []byte // the start of an unfinished line of each stream
	Waiters                []int  // connections blocked in a wait request
	// ShimExe and IdleExe are the two programs' binaries, opened when the
	// shim started: each process execs the other through its fd, so that
	// a shim keeps running the code it started with when skiff is
	// upgraded in place (as containerd's shims do).
	ShimExe, IdleExe int
	// Requests are the connections whose requests the idle monitor hands
	// over, with what it read of each.
	Requests []Request
}

// Request is a connection handed over with the start of its request.
type Request struct {
	Conn int
	Data []byte
}

// Encode returns p as one string of space-separated key=value fields.
func (p *Parked) Encode() string {
	var b []byte
	field := func(k string) { b = append(append(append(b, ' '), k...), '=') }
	str := func(k string, v []byte) {
		if len(v) == 0 {
			return
		}
		field(k)
		b = appendHex(b, v)
	}
	num := func(k string, v int) { field(k); b = strconv.AppendInt(b, int64(v), 10) }
	flag := func(k string, v bool) {
		if v {
			num(k, 1)
		}
	}
	str("id", []byte(p.ID))
	str("bundle", []byte(p.Bundle))
	str("state", []byte(p.StateDir))
	flag("terminal", p.Terminal)
	flag("stdin", p.Stdin)
	flag("debug", p.Debug)
	num("pid", p.Pid)
	flag("started", p.Started)
	flag("paused", p.Paused)
	flag("stdin-closed", p.StdinClosed)
	if e := p.Exit; e != nil {
		field("exit")
		b = strconv.AppendInt(b, int64(e.Code), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(e.Signal), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, e.Sec, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(e.Nsec), 10)
	}
	num("listener", p.Listener)
	num("log", p.Log)
	num("out", p.Out)
	num("err", p.Err)
	num("in", p.In)
	num("shim-exe", p.ShimExe)
	num("idle-exe", p.IdleExe)
	flag("out-ended", p.OutEnded)
	str("out-pending", p.OutPending)
	str("err-pending", p.ErrPending)
	if len(p.Waiters) > 0 {
		field("waiters")
		for i, fd := range p.Waiters {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(fd), 10)
		}
	}
	if len(p.Requests) > 0 {
		field("requests")
		for i, r := range p.Requests {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(r.Conn), 10)
			b = append(b, ':')
			b = appendHex(b, r.Data)
		}
	}
	return string(b[1:])
}

const hexDigits = "0123456789abcdef"

func appendHex(b, v []byte) []byte {
	for _, c := range v {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

func decodeHex(v string) ([]byte, error) {
	if len(v)%2 != 0 {
		return nil, errors.New("odd hex length")
	}
	out := make([]byte, len(v)/2)
	for i := range out {
		hi, lo := unhex(v[2*i]), unhex(v[2*i+1])
		if hi < 0 || lo < 0 {
			return nil, errors.New("not hex")
		}
		out[i] = byte(hi<<4 | lo)
	}
	return out, nil
}

// DecodeParked parses what Encode returned. Every fd is -1 unless given.
func DecodeParked(s string) (*Parked, error) {
	p := &Parked{Pid: -1, Listener: -1, Log: -1, Out: -1, Err: -1, In: -1, ShimExe: -1, IdleExe: -1}
	bad := func(field, why string) (*Parked, error) {
		return nil, errors.New("parked state: field " + field + ": " + why)
	}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return bad(f, "not key=value")
		}
		var err error
		num := func(dst *int) {
			var n int
			if n, err = strconv.Atoi(v); err == nil {
				*dst = n
			}
		}
		str := func(dst *[]byte) { *dst, err = decodeHex(v) }
		text := func(dst *string) {
			var b []byte
			str(&b)
			*dst = string(b)
		}
		flag := func(dst *bool) {
			if v != "1" {
				err = errors.New("not 1")
			}
			*dst = true
		}
		switch k {
		case "id":
			text(&p.ID)
		case "bundle":
			text(&p.Bundle)
		case "state":
			text(&p.StateDir)
		case "terminal":
			flag(&p.Terminal)
		case "stdin":
			flag(&p.Stdin)
		case "debug":
			flag(&p.Debug)
		case "pid":
			num(&p.Pid)
		case "started":
			flag(&p.Started)
		case "paused":
			flag(&p.Paused)
		case "stdin-closed":
			flag(&p.StdinClosed)
		case "exit":
			parts := strings.Split(v, ",")
			if len(parts) != 4 {
				return bad(k, "not code,signal,sec,nsec")
			}
			var n [4]int64
			for i, s := range parts {
				if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
					break
				}
			}
			p.Exit = &Exit{Code: int(n[0]), Signal: int(n[1]), Sec: n[2], Nsec: int(n[3])}
		case "listener":
			num(&p.Listener)
		case "log":
			num(&p.Log)
		case "out":
			num(&p.Out)
		case "err":
			num(&p.Err)
		case "in":
			num(&p.In)
		case "shim-exe":
			num(&p.ShimExe)
		case "idle-exe":
			num(&p.IdleExe)
		case "out-ended":
			flag(&p.OutEnded)
		case "out-pending":
			str(&p.OutPending)
		case "err-pending":
			str(&p.ErrPending)
		case "waiters":
			for _, s := range strings.Split(v, ",") {
				var fd int
				if fd, err = strconv.Atoi(s); err != nil {
					break
				}
				p.Waiters = append(p.Waiters, fd)
			}
		case "requests":
			for _, s := range strings.Split(v, ",") {
				fd, data, _ := strings.Cut(s, ":")
				var r Request
				if r.Conn, err = strconv.Atoi(fd); err != nil {
					break
				}
				if r.Data, err = decodeHex(data); err != nil {
					break
				}
				p.Requests = append(p.Requests, r)
			}
		default:
			return bad(k, "unknown")
		}
		if err != nil {
			return bad(k, err.Error())
		}
	}
	switch {
	case p.ID == "" || p.StateDir == "":
		return nil, errors.New("parked state: no id or state directory")
	case p.Pid <= 0:
		return nil, errors.New("parked state: no container pid")
	case p.Listener < 0 || p.Log < 0:
		return nil, errors.New("parked state: no control socket or container log")
	}
	return p, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// Fds returns every fd p passes.
func (p *Parked) Fds() []int {
	var fds []int
	for _, fd := range append([]int{p.Listener, p.Log, p.Out, p.Err, p.In, p.ShimExe, p.IdleExe}, p.Waiters...) {
		if fd >= 0 {
			fds = append(fds, fd)
		}
	}
	for _, r := range p.Requests {
		fds = append(fds, r.Conn)
	}
	return fds
}

// ExecPath returns the path to exec the binary open at fd: its
// /proc/self/fd entry, or path if fd is -1.
func ExecPath(fd int, path string) string {
	if fd < 0 {
		return path
	}
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// SetName sets the calling thread's name (/proc/PID/comm), which an exec
// through /proc/self/fd would otherwise leave as the fd's number.
func SetName(name string) {
	var b [16]byte
	copy(b[:15], name)
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0)
}
