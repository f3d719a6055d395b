package shim

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// Stream names of the CRI log format.
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// defaultMaxLine is the longest line written as one log entry; longer
// lines are split into partial (P) entries of this size, as containerd's
// max_container_log_line_size (16 KiB) does.
const defaultMaxLine = 16 << 10

// logFile is the container log shared by the streams. Each entry is written
// with a single write(2) on a file opened O_APPEND, under mu, so entries of
// stdout and stderr never interleave and each is on disk (in the page
// cache) as soon as its line is complete.
type logFile struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
	buf []byte
}

// write writes one CRI entry: "<RFC3339Nano> <stream> <P|F> <line>\n".
func (l *logFile) write(stream string, partial bool, line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	tag := byte('F')
	if partial {
		tag = 'P'
	}
	b := appendRFC3339(l.buf[:0], l.now(), false)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, line...)
	b = append(b, '\n')
	// Keep a modest buffer for the next entry, not the largest ever seen.
	if cap(b) <= 2*defaultMaxLine+64 {
		l.buf = b
	}
	_, err := l.w.Write(b)
	return err
}

// lineSplitter turns a stream's bytes into CRI entries: one F entry per
// line (the "\n" and a "\r" before it dropped, as containerd's ReadLine
// does), P entries of max bytes for the pieces of a longer line, and an F
// entry for what remains at the end of the stream.
type lineSplitter struct {
	log     *logFile
	stream  string
	max     int
	pending []byte
}

// Write consumes p; it never fails on p's account, only if the log does.
func (s *lineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.pending = append(s.pending, p...)
			p = nil
			break
		}
		if err := s.emitLine(p[:i]); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	for len(s.pending) >= s.max {
		if err := s.log.write(s.stream, true, s.pending[:s.max]); err != nil {
			return 0, err
		}
		s.pending = append(s.pending[:0], s.pending[s.max:]...)
	}
	return n, nil
}

// emitLine writes pending+line as a full line, preceded by as many partial
// entries as its length needs.
func (s *lineSplitter) emitLine(line []byte) error {
	full := line
	if len(s.pending) > 0 {
		s.pending = append(s.pending, line...)
		full = s.pending
	}
	full = bytes.TrimSuffix(full, []byte{'\r'})
	for len(full) > s.max {
		if err := s.log.write(s.stream, true, full[:s.max]); err != nil {
			return err
		}
		full = full[s.max:]
	}
	err := s.log.write(s.stream, false, full)
	s.pending = s.pending[:0]
	if cap(s.pending) > s.max+1 {
		s.pending = nil // don't keep a huge buffer for an idle stream
	}
	return err
}

// Close writes what remains of an unterminated last line as a full entry.
func (s *lineSplitter) Close() error {
	if len(s.pending) == 0 {
		return nil
	}
	last := s.pending
	s.pending = nil
	return s.log.write(s.stream, false, bytes.TrimSuffix(last, []byte{'\r'}))
}
