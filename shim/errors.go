package shim

import (
	"errors"
	"io"
	"os"
	"path"
	"strconv"
	"syscall"
	"unicode/utf8"
)

// The shim formats its messages without fmt (see wire.go for why): errors
// are built by concatenation and carry their errdefs class and cause.

// shimError is an error with a message, an errdefs class (errors.Is
// matches it) and a cause (errors.Is and errors.As see it too).
type shimError struct {
	msg   string
	class error
	cause error
}

func (e *shimError) Error() string { return e.msg }

func (e *shimError) Unwrap() []error {
	switch {
	case e.class != nil && e.cause != nil:
		return []error{e.class, e.cause}
	case e.class != nil:
		return []error{e.class}
	case e.cause != nil:
		return []error{e.cause}
	}
	return nil
}

// newError returns an error of class (nil: none) saying msg.
func newError(class error, msg string) error {
	return &shimError{msg: msg, class: class}
}

// wrapError returns an error of class (nil: none) saying "msg: cause".
func wrapError(class, cause error, msg string) error {
	return &shimError{msg: msg + ": " + cause.Error(), class: class, cause: cause}
}

// containerError returns an error of class saying
// "container ID: <class>: msg", as fmt's "container %s: %w: %s" did.
func containerError(id string, class error, msg string) error {
	return newError(class, "container "+id+": "+class.Error()+": "+msg)
}

func isError(err, target error) bool { return errors.Is(err, target) }

// quote returns s in double quotes, with quotes, backslashes, control
// characters and invalid UTF-8 escaped (as %q, for messages).
func quote(s string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 || c == 0x7f {
				b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, c)
			}
		}
		i++
	}
	return string(append(b, '"'))
}

// quoteList formats ss as %q formats a []string.
func quoteList(ss []string) string {
	b := []byte{'['}
	for i, s := range ss {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, quote(s)...)
	}
	return string(append(b, ']'))
}

func itoa(n int) string { return strconv.Itoa(n) }

// joinPath joins a directory and a name (paths are the host's, slash
// separated: path is filepath on Linux).
func joinPath(elem ...string) string { return path.Join(elem...) }

// The shim stats, makes directories and reads small files through these
// rather than os.Stat, os.MkdirAll and os.ReadFile: os's FileInfo carries
// a time.Time, and with it (through reflection's reach) time's formatting
// and time zone code would be mapped into every shim (see wire.go).

// stat stats p, following symbolic links.
func stat(p string) (syscall.Stat_t, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(p, &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return st, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		return st, nil
	}
}

func isDir(st syscall.Stat_t) bool     { return st.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func isRegular(st syscall.Stat_t) bool { return st.Mode&syscall.S_IFMT == syscall.S_IFREG }

// mkdirAll makes directory p and its missing parents with perm, as
// os.MkdirAll does.
func mkdirAll(p string, perm uint32) error {
	if st, err := stat(p); err == nil {
		if isDir(st) {
			return nil
		}
		return &os.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
	}
	if parent := path.Dir(p); parent != p && parent != "." && parent != "/" {
		if err := mkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := syscall.Mkdir(p, perm); err != nil {
		if st, serr := stat(p); serr == nil && isDir(st) {
			return nil // made meanwhile
		}
		return &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	return nil
}

// readFile reads a small file.
func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// parseInt parses a decimal integer (an optional '-' and at most 18
// digits): strconv.Atoi's errors would link strconv's quoting tables.
func parseInt(s string) (int, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if s == "" || len(s) > 18 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
