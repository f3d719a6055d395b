package containers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// criEntry is one parsed line of a CRI log.
type criEntry struct {
	stream  Stream
	t       time.Time
	partial bool
	data    []byte
}

// parseCRILine parses "<RFC3339Nano> <stdout|stderr> <P|F> <line>" (line
// without its newline).
func parseCRILine(line []byte) (criEntry, error) {
	var e criEntry
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return e, errors.New("no stream")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return e, err
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return e, errors.New("no tag")
	}
	switch string(stream) {
	case "stdout":
		e.stream = Stdout
	case "stderr":
		e.stream = Stderr
	default:
		return e, fmt.Errorf("unknown stream %q", stream)
	}
	tag, data, _ := bytes.Cut(rest, []byte{' '})
	switch string(tag) {
	case "P":
		e.partial = true
	case "F":
	default:
		return e, fmt.Errorf("unknown tag %q", tag)
	}
	e.t = t
	e.data = data
	return e, nil
}

// logReader turns CRI log lines into LogEntries, joining partial entries
// per stream.
type logReader struct {
	pending map[Stream]*LogEntry
}

// feed takes one log line and returns the entry it completes, if any.
func (r *logReader) feed(line []byte) (LogEntry, bool) {
	e, err := parseCRILine(line)
	if err != nil {
		return LogEntry{}, false // a malformed line is skipped
	}
	p := r.pending[e.stream]
	if p == nil {
		p = &LogEntry{Stream: e.stream, Time: e.t}
	}
	p.Data = append(p.Data, e.data...)
	if e.partial {
		r.pending[e.stream] = p
		return LogEntry{}, false
	}
	delete(r.pending, e.stream)
	p.Data = append(p.Data, '\n')
	return *p, true
}

// Logs sends the container's log entries to send: the last o.Tail lines
// (all if negative) between o.Since and o.Until and, with o.Follow, what
// the container writes afterwards, until it has exited and its log is
// drained (or ctx ends). An error from send stops Logs and is returned.
func (s *Service) Logs(ctx context.Context, ns, idOrName string, o LogsOptions, send func(LogEntry) error) error {
	rec, err := s.resolve(ns, idOrName)
	if err != nil {
		return err
	}
	c := s.ctr(ns, rec.ID)
	f, err := os.Open(rec.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		if !o.Follow || !s.view(ns, rec).Running() {
			return nil // never started: no log yet
		}
		for errors.Is(err, os.ErrNotExist) {
			select {
			case <-time.After(logPollPeriod):
			case <-ctx.Done():
				return nil
			}
			f, err = os.Open(rec.LogPath)
		}
	}
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", idOrName, err)
	}
	defer f.Close()

	r := &logReader{pending: map[Stream]*LogEntry{}}
	keep := func(e LogEntry) bool {
		return (o.Since.IsZero() || !e.Time.Before(o.Since)) && (o.Until.IsZero() || e.Time.Before(o.Until))
	}
	pastUntil := func(e LogEntry) bool { return !o.Until.IsZero() && !e.Time.Before(o.Until) }

	// The existing log, with the tail applied.
	br := bufio.NewReaderSize(f, 64<<10)
	var tail []LogEntry
	var partialLine []byte
	readLines := func(emit func(LogEntry) error) error {
		for {
			chunk, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				partialLine = append(partialLine, chunk...)
				continue
			}
			if err != nil {
				// Incomplete last line: keep it for the next read.
				partialLine = append(partialLine, chunk...)
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			line := chunk[:len(chunk)-1]
			if len(partialLine) > 0 {
				line = append(partialLine, line...)
				partialLine = nil
			}
			if e, ok := r.feed(line); ok {
				if err := emit(e); err != nil {
					return err
				}
			}
		}
	}
	errUntil := errors.New("past until")
	if err := readLines(func(e LogEntry) error {
		if pastUntil(e) {
			return errUntil
		}
		if !keep(e) {
			return nil
		}
		if o.Tail < 0 {
			return send(e)
		}
		if o.Tail == 0 {
			return nil
		}
		tail = append(tail, e)
		if int64(len(tail)) > o.Tail {
			tail = tail[1:]
		}
		return nil
	}); err != nil && !errors.Is(err, errUntil) {
		return err
	} else if errors.Is(err, errUntil) {
		for _, e := range tail {
			if err := send(e); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range tail {
		if err := send(e); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}

	// Follow: read what is appended until the container has exited and the
	// log is drained (the shim writes the exit only after the output ended).
	emit := func(e LogEntry) error {
		if pastUntil(e) {
			return errUntil
		}
		if keep(e) {
			return send(e)
		}
		return nil
	}
	for {
		exited := c.exitChan()
		cur, err := s.cfg.DB.GetContainer(ns, rec.ID)
		running := err == nil && s.view(ns, cur).Running()
		if err := readLines(emit); err != nil {
			if errors.Is(err, errUntil) {
				return nil
			}
			return err
		}
		if !running {
			return nil
		}
		select {
		case <-exited:
		case <-time.After(logPollPeriod):
		case <-ctx.Done():
			return nil
		}
	}
}
