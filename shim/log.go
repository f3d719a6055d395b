package shim

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/skiff-containers/skiff/shim/internal/wire"
)

// logger writes the shim log in log/slog's text format (without log/slog,
// see wire.go): one line per record,
//
//	time=2006-01-02T15:04:05.000Z level=INFO msg="container created" id=c1 shim=42 pid=43
//
// with the time in UTC. Values are strings, ints, bools and errors.
type logger struct {
	mu    sync.Mutex
	w     io.Writer
	debug bool
	attrs []byte // " id=… shim=…", appended to every line
	buf   []byte
}

func newLogger(w io.Writer, debug bool, kv ...any) *logger {
	l := &logger{w: w, debug: debug}
	l.attrs = appendAttrs(nil, kv)
	return l
}

func (l *logger) Debug(msg string, kv ...any) {
	if l.debug {
		l.log("DEBUG", msg, kv)
	}
}
func (l *logger) Info(msg string, kv ...any)  { l.log("INFO", msg, kv) }
func (l *logger) Warn(msg string, kv ...any)  { l.log("WARN", msg, kv) }
func (l *logger) Error(msg string, kv ...any) { l.log("ERROR", msg, kv) }

func (l *logger) log(level, msg string, kv []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := append(l.buf[:0], "time="...)
	sec, nsec := wire.Now()
	b = wire.AppendRFC3339(b, sec, nsec, true)
	b = append(b, " level="...)
	b = append(b, level...)
	b = append(b, " msg="...)
	b = appendLogValue(b, msg)
	b = append(b, l.attrs...)
	b = appendAttrs(b, kv)
	b = append(b, '\n')
	l.w.Write(b)
	if cap(b) <= 4096 {
		l.buf = b
	}
}

// appendAttrs appends " key=value" for each pair of kv.
func appendAttrs(b []byte, kv []any) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, '=')
		switch v := kv[i+1].(type) {
		case string:
			b = appendLogValue(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case bool:
			b = strconv.AppendBool(b, v)
		case error:
			b = appendLogValue(b, v.Error())
		case nil:
			b = append(b, "<nil>"...)
		default:
			b = append(b, '?')
		}
	}
	return b
}

// appendLogValue appends s, quoted if slog's text handler would quote it
// (empty, or with spaces, '=', '"' or unprintable characters).
func appendLogValue(b []byte, s string) []byte {
	if s == "" {
		return append(b, `""`...)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' || c == 0x7f {
				return append(b, quote(s)...)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return append(b, quote(s)...)
		}
		i += size
	}
	return append(b, s...)
}

// appendDuration appends d in seconds ("2s") or milliseconds ("1500ms"):
// not Duration.String, which links float formatting.
func appendDuration(b []byte, d time.Duration) []byte {
	if d%time.Second == 0 {
		return append(strconv.AppendInt(b, int64(d/time.Second), 10), 's')
	}
	return append(strconv.AppendInt(b, int64(d/time.Millisecond), 10), "ms"...)
}

func durationString(d time.Duration) string { return string(appendDuration(nil, d)) }
