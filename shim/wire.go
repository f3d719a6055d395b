package shim

import (
	"encoding/binary"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/internal/jsonstr"
	"github.com/skiff-containers/skiff/shim/internal/wire"
)

// The shim speaks package proto's wire format without importing proto:
// proto (for its clients) uses encoding/json and fmt, whose code and
// reflection tables would be mapped into every idle shim (about 1 MB of
// resident memory per container, see BENCHMARKS.md). The constants below
// mirror proto's, and the few messages are encoded and decoded by hand;
// wire_test.go checks both against proto and encoding/json.

// File names inside the --state directory (proto.SocketName, …).
const (
	socketName     = "shim.sock"
	exitFileName   = wire.ExitFileName
	pidFileName    = "init.pid"
	runtimeLogName = "runtime.log"
	shimLogName    = "shim.log"
)

// Ops of a request (proto.OpState, …).
const (
	opState      = "state"
	opStart      = "start"
	opKill       = "kill"
	opWait       = "wait"
	opAttach     = "attach"
	opCloseStdin = "close-stdin"
	opResize     = "resize"
	opDelete     = "delete"
	opShutdown   = "shutdown"
	opExec       = "exec"
	opPause      = "pause"
	opResume     = "resume"
)

// Container statuses (proto.StatusCreated, …).
const (
	statusCreated = wire.StatusCreated
	statusRunning = wire.StatusRunning
	statusStopped = wire.StatusStopped
	statusPaused  = wire.StatusPaused
)

// Frame types of an attach stream (proto.FrameStdout, …) and the largest
// payload (proto.MaxFramePayload).
const (
	frameStdout     byte = 1
	frameStderr     byte = 2
	frameExit       byte = 3
	frameStdin      byte = 4
	frameStdinEOF   byte = 5
	frameResize     byte = 6
	maxFramePayload      = 64 << 10
)

// errorClasses are proto's error classes, in proto's order of matching.
var errorClasses = [...]struct {
	name string
	err  error
}{
	{"not-found", errdefs.ErrNotFound},
	{"already-exists", errdefs.ErrAlreadyExists},
	{"invalid-argument", errdefs.ErrInvalidArgument},
	{"failed-precondition", errdefs.ErrFailedPrecondition},
	{"not-implemented", errdefs.ErrNotImplemented},
}

// classInternal is the class of an error of none of errorClasses.
const classInternal = "internal"

// errorClass returns the proto class name of err.
func errorClass(err error) string {
	for _, c := range errorClasses {
		if isError(err, c.err) {
			return c.name
		}
	}
	return classInternal
}

// request is proto.Request.
type request struct {
	Op              string
	Signal          int
	All             bool
	Force           bool
	Stdin           bool
	CloseStdinOnEOF bool
	Resize          *resize
	ExecID          string
	Process         string
	Terminal        bool
}

// resize is proto.Resize.
type resize struct {
	Width, Height uint16
}

// exitStatus is proto.Exit.
type exitStatus = wire.Exit

// state is proto.State.
type state = wire.State

// response is proto.Response.
type response struct {
	Error string
	Class string
	State *state
	Exit  *exitStatus
	Pid   int
}

// errorResponse is proto.ErrorResponse.
func errorResponse(err error) response {
	return response{Error: err.Error(), Class: errorClass(err)}
}

// appendJSON appends r as encoding/json marshals a proto.Response.
func (r *response) appendJSON(b []byte) []byte {
	b = append(b, '{')
	sep := func(b []byte) []byte {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		return b
	}
	if r.Error != "" {
		b = append(sep(b), `"error":`...)
		b = jsonstr.Append(b, r.Error)
	}
	if r.Class != "" {
		b = append(sep(b), `"class":`...)
		b = jsonstr.Append(b, r.Class)
	}
	if r.State != nil {
		b = append(sep(b), `"state":`...)
		b = r.State.AppendJSON(b)
	}
	if r.Exit != nil {
		b = append(sep(b), `"exit":`...)
		b = r.Exit.AppendJSON(b)
	}
	if r.Pid != 0 {
		b = append(sep(b), `"pid":`...)
		b = strconv.AppendInt(b, int64(r.Pid), 10)
	}
	return append(b, '}')
}

// jsonDecoder reads the few JSON messages the shim receives, with
// encoding/json's semantics for them: unknown fields are ignored, field
// names match case-insensitively, null leaves a field as it is, and a
// value of the wrong type or anything but whitespace after the value is
// an error.
type jsonDecoder struct {
	b []byte
	i int
}

var errJSONSyntax = newError(nil, "invalid JSON")

func jsonTypeError(what string) error {
	return newError(nil, "json: cannot unmarshal "+what)
}

func (d *jsonDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (d *jsonDecoder) peek() byte {
	d.skipSpace()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// literal consumes lit if it comes next.
func (d *jsonDecoder) literal(lit string) bool {
	d.skipSpace()
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// null consumes a null if one comes next.
func (d *jsonDecoder) null() bool { return d.literal("null") }

// end checks that only whitespace remains.
func (d *jsonDecoder) end() error {
	if d.peek() != 0 {
		return errJSONSyntax
	}
	return nil
}

// object reads an object (or null), calling field for each member; field
// must consume the value.
func (d *jsonDecoder) object(field func(key string) error) error {
	if d.null() {
		return nil
	}
	if d.peek() != '{' {
		if err := d.skip(); err != nil {
			return err
		}
		return jsonTypeError("non-object into an object")
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		return nil
	}
	var typeErr error
	for {
		if d.peek() != '"' {
			return errJSONSyntax
		}
		key, err := d.rawString()
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return errJSONSyntax
		}
		d.i++
		if err := field(key); err != nil {
			if err == errJSONSyntax {
				return err
			}
			if typeErr == nil {
				typeErr = err
			}
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return typeErr
		default:
			return errJSONSyntax
		}
	}
}

// str reads a string into *s (null leaves it).
func (d *jsonDecoder) str(s *string) error {
	if d.null() {
		return nil
	}
	if d.peek() != '"' {
		if err := d.skip(); err != nil {
			return err
		}
		return jsonTypeError("non-string into a string")
	}
	v, err := d.rawString()
	if err == nil {
		*s = v
	}
	return err
}

// boolean reads true or false into *v (null leaves it).
func (d *jsonDecoder) boolean(v *bool) error {
	switch {
	case d.null():
	case d.literal("true"):
		*v = true
	case d.literal("false"):
		*v = false
	default:
		if err := d.skip(); err != nil {
			return err
		}
		return jsonTypeError("non-boolean into a bool")
	}
	return nil
}

// integer reads an integer in [lo, hi] into *v (null leaves it).
func (d *jsonDecoder) integer(v *int, lo, hi int) error {
	if d.null() {
		return nil
	}
	c := d.peek()
	if c != '-' && (c < '0' || c > '9') {
		if err := d.skip(); err != nil {
			return err
		}
		return jsonTypeError("non-number into an integer")
	}
	num, isInt, err := d.number()
	if err != nil {
		return err
	}
	n, ok := parseInt(num)
	if !isInt || !ok || n < lo || n > hi {
		return jsonTypeError("number " + num + " into an integer field")
	}
	*v = n
	return nil
}

// number reads a number token, checking its syntax.
func (d *jsonDecoder) number() (tok string, isInt bool, err error) {
	d.skipSpace()
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return "", false, errJSONSyntax
	}
	isInt = true
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		isInt = false
		if digits() == 0 {
			return "", false, errJSONSyntax
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		isInt = false
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return "", false, errJSONSyntax
		}
	}
	return string(d.b[start:d.i]), isInt, nil
}

// rawString reads a string at d.i (which is '"'), unescaped; invalid
// UTF-8 becomes U+FFFD.
func (d *jsonDecoder) rawString() (string, error) {
	d.i++
	var out []byte
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := string(append(out, d.b[start:d.i]...))
			d.i++
			return s, nil
		case c < 0x20:
			return "", errJSONSyntax
		case c == '\\':
			out = append(out, d.b[start:d.i]...)
			var ok bool
			if out, d.i, ok = jsonstr.AppendUnescaped(out, d.b, d.i+1); !ok {
				return "", errJSONSyntax
			}
			start = d.i
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, d.b[start:d.i]...)
				out = utf8.AppendRune(out, utf8.RuneError)
				d.i++
				start = d.i
				continue
			}
			d.i += size
		}
	}
	return "", errJSONSyntax
}

// skip reads any value.
func (d *jsonDecoder) skip() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(func(string) error { return d.skip() })
	case c == '[':
		d.i++
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			default:
				return errJSONSyntax
			}
		}
	case c == '"':
		_, err := d.rawString()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, err := d.number()
		return err
	case d.literal("true"), d.literal("false"), d.literal("null"):
		return nil
	}
	return errJSONSyntax
}

// keyIs reports whether a JSON member name matches a field's name as
// encoding/json matches them (case-insensitively).
func keyIs(key, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := 0; i < len(key); i++ {
		a, b := key[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// decodeResize decodes a proto.Resize (null leaves *r).
func (d *jsonDecoder) resize(r *resize) error {
	return d.object(func(key string) error {
		var n int
		var err error
		switch {
		case keyIs(key, "width"):
			n = int(r.Width)
			err = d.integer(&n, 0, 1<<16-1)
			r.Width = uint16(n)
		case keyIs(key, "height"):
			n = int(r.Height)
			err = d.integer(&n, 0, 1<<16-1)
			r.Height = uint16(n)
		default:
			err = d.skip()
		}
		return err
	})
}

// parseRequest decodes a proto.Request.
func parseRequest(data []byte) (request, error) {
	var req request
	d := &jsonDecoder{b: data}
	err := d.object(func(key string) error {
		switch {
		case keyIs(key, "op"):
			return d.str(&req.Op)
		case keyIs(key, "signal"):
			return d.integer(&req.Signal, -1<<31, 1<<31-1)
		case keyIs(key, "all"):
			return d.boolean(&req.All)
		case keyIs(key, "force"):
			return d.boolean(&req.Force)
		case keyIs(key, "stdin"):
			return d.boolean(&req.Stdin)
		case keyIs(key, "closeStdinOnEOF"):
			return d.boolean(&req.CloseStdinOnEOF)
		case keyIs(key, "execId"):
			return d.str(&req.ExecID)
		case keyIs(key, "process"):
			return d.str(&req.Process)
		case keyIs(key, "terminal"):
			return d.boolean(&req.Terminal)
		case keyIs(key, "resize"):
			if d.null() {
				req.Resize = nil
				return nil
			}
			if req.Resize == nil {
				req.Resize = &resize{}
			}
			return d.resize(req.Resize)
		}
		return d.skip()
	})
	if err == nil {
		err = d.end()
	}
	return req, err
}

// parseResize decodes a FrameResize payload.
func parseResize(data []byte) (resize, error) {
	var r resize
	d := &jsonDecoder{b: data}
	err := d.resize(&r)
	if err == nil {
		err = d.end()
	}
	return r, err
}

// writeFrame writes one attach frame with a single write.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > maxFramePayload {
		return newError(errdefs.ErrInvalidArgument, "attach frame of "+strconv.Itoa(len(payload))+" bytes exceeds "+strconv.Itoa(maxFramePayload))
	}
	buf := make([]byte, 5, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	_, err := w.Write(append(buf, payload...))
	return err
}

// readFrame reads one attach frame; buf is reused for the payload when it
// is large enough. io.EOF means the stream ended cleanly between frames.
func readFrame(r io.Reader, buf []byte) (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFramePayload {
		return 0, nil, newError(errdefs.ErrInvalidArgument, "attach frame of "+strconv.FormatUint(uint64(n), 10)+" bytes exceeds "+strconv.Itoa(maxFramePayload))
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

// writeExitFile writes e to dir/exit atomically, as proto.WriteExitFile
// does.
func writeExitFile(dir string, e *exitStatus) error {
	if err := wire.WriteExitFile(dir, e); err != nil {
		return wrapError(nil, err, "write exit file in "+dir)
	}
	return nil
}
