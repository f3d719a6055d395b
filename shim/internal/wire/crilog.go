package wire

import (
	"bytes"
	"io"
	"sync"
)

// Stream names of the CRI log format.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// MaxLine is the longest line written as one log entry; longer lines are
// split into partial (P) entries of this size, as containerd's
// max_container_log_line_size (16 KiB) does.
const MaxLine = 16 << 10

// Log is a container log in the CRI format, shared by the streams. Each
// entry is written with a single write(2) on a file opened O_APPEND, under
// mu, so entries of stdout and stderr never interleave and each is on disk
// (in the page cache) as soon as its line is complete.
type Log struct {
	mu sync.Mutex
	W  io.Writer
	// Now is the clock of the entries' times (Now if nil).
	Now func() (sec int64, nsec int)
	buf []byte
}

// write writes one CRI entry: "<RFC3339Nano> <stream> <P|F> <line>\n".
func (l *Log) write(stream string, partial bool, line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	tag := byte('F')
	if partial {
		tag = 'P'
	}
	now := l.Now
	if now == nil {
		now = Now
	}
	sec, nsec := now()
	b := AppendRFC3339(l.buf[:0], sec, nsec, false)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, line...)
	b = append(b, '\n')
	// Keep a modest buffer for the next entry, not the largest ever seen.
	if cap(b) <= 2*MaxLine+64 {
		l.buf = b
	}
	_, err := l.W.Write(b)
	return err
}

// Splitter turns a stream's bytes into CRI entries: one F entry per line
// (the "\n" and a "\r" before it dropped, as containerd's ReadLine does),
// P entries of Max bytes for the pieces of a longer line, and an F entry
// for what remains at the end of the stream.
type Splitter struct {
	Log    *Log
	Stream string
	Max    int
	// Pending is the start of a line whose end has not come yet. It is
	// handed over with the stream when the other process takes it over
	// (Parked).
	Pending []byte
}

// Write consumes p; it never fails on p's account, only if the log does.
func (s *Splitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.Pending = append(s.Pending, p...)
			break
		}
		if err := s.emitLine(p[:i]); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	for len(s.Pending) >= s.Max {
		if err := s.Log.write(s.Stream, true, s.Pending[:s.Max]); err != nil {
			return 0, err
		}
		s.Pending = append(s.Pending[:0], s.Pending[s.Max:]...)
	}
	return n, nil
}

// emitLine writes Pending+line as a full line, preceded by as many partial
// entries as its length needs.
func (s *Splitter) emitLine(line []byte) error {
	full := line
	if len(s.Pending) > 0 {
		s.Pending = append(s.Pending, line...)
		full = s.Pending
	}
	full = bytes.TrimSuffix(full, []byte{'\r'})
	for len(full) > s.Max {
		if err := s.Log.write(s.Stream, true, full[:s.Max]); err != nil {
			return err
		}
		full = full[s.Max:]
	}
	err := s.Log.write(s.Stream, false, full)
	s.Pending = s.Pending[:0]
	if cap(s.Pending) > s.Max+1 {
		s.Pending = nil // don't keep a huge buffer for an idle stream
	}
	return err
}

// Close writes what remains of an unterminated last line as a full entry.
func (s *Splitter) Close() error {
	if len(s.Pending) == 0 {
		return nil
	}
	last := s.Pending
	s.Pending = nil
	return s.Log.write(s.Stream, false, bytes.TrimSuffix(last, []byte{'\r'}))
}
