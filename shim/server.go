package shim

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

const (
	// requestTimeout bounds the reading of a request line.
	requestTimeout = 10 * time.Second
	// maxRequest bounds a request line.
	maxRequest = 64 << 10
	// attachQueue is how many output chunks may wait for a slow attached
	// client; beyond that the client is dropped rather than the container
	// being slowed down.
	attachQueue = 64
	// attachWriteTimeout bounds one frame's write to an attached client.
	attachWriteTimeout = 10 * time.Second
)

// serve accepts connections until the listener is closed. With parking
// on, an accept that waited ParkAfter in vain tries to park the shim.
func (m *monitor) serve() {
	for {
		if m.cfg.ParkAfter > 0 && m.idleExe != nil {
			m.ln.SetReadDeadline(time.Now().Add(m.cfg.ParkAfter))
		}
		conn, err := accept(m.ln)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			m.tryPark()
			continue
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				m.log.Error("accept on the control socket", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		m.beginRequest()
		go m.handle(conn, nil)
	}
}

// beginRequest and endRequest bracket the serving of a request: the shim
// does not park while one is in progress.
func (m *monitor) beginRequest() {
	m.mu.Lock()
	m.busy++
	m.lastActive = time.Now()
	m.mu.Unlock()
}

func (m *monitor) endRequest() {
	m.mu.Lock()
	m.busy--
	m.lastActive = time.Now()
	m.mu.Unlock()
}

// handle serves the one request of a connection; read is what was read
// of it already (by the idle monitor, which handed it over).
func (m *monitor) handle(conn *os.File, read []byte) {
	defer m.endRequest()
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	br := &connReader{r: conn}
	if len(read) > 0 {
		br.buf = make([]byte, max(512, len(read)))
		br.n = copy(br.buf, read)
	}
	line, err := br.readLine(maxRequest)
	if err != nil {
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	req, err := parseRequest(line)
	if err != nil {
		m.reply(conn, errorResponse(m.errorf(errdefs.ErrInvalidArgument, "malformed request: "+err.Error())))
		conn.Close()
		return
	}
	m.log.Debug("request", "op", req.Op)
	var resp response
	var after func()
	switch req.Op {
	case opState:
		resp.State = m.state()
	case opStart:
		err = m.start()
	case opKill:
		err = m.kill(req.Signal, req.All)
	case opWait:
		resp.Exit, err = m.wait(conn)
	case opAttach:
		m.attach(conn, br, req)
		return // attach owns conn
	case opExec:
		m.exec(conn, br, req)
		return // exec owns conn
	case opPause:
		err = m.pause()
	case opResume:
		err = m.resume()
	case opCloseStdin:
		err = m.closeStdin()
	case opResize:
		err = m.resize(req.Resize)
	case opDelete:
		if err = m.delete(req.Force); err == nil {
			resp.State = m.state()
			after = m.requestQuit
		}
	case opShutdown:
		if err = m.shutdown(req.Force); err == nil {
			after = m.requestQuit
		}
	default:
		err = m.errorf(errdefs.ErrNotImplemented, "unknown request "+quote(req.Op)+" (known: state, start, kill, wait, attach, exec, pause, resume, close-stdin, resize, delete, shutdown)")
	}
	if err != nil {
		m.log.Warn("request failed", "op", req.Op, "err", err)
		resp = errorResponse(err)
	}
	m.reply(conn, resp)
	conn.Close()
	if after != nil {
		after()
	}
}

func (m *monitor) reply(conn conn, resp response) {
	data := resp.appendJSON(make([]byte, 0, 256))
	conn.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
	conn.Write(append(data, '\n'))
	conn.SetWriteDeadline(time.Time{})
}

// connReader is a connection's buffered reader: the request line, then
// (attach) the client's frames, which may have come in the same read.
type connReader struct {
	r    io.Reader
	buf  []byte
	i, n int
}

// readLine reads one "\n"-terminated line of at most max bytes.
func (b *connReader) readLine(max int) ([]byte, error) {
	if b.buf == nil {
		b.buf = make([]byte, 512)
	}
	var line []byte
	for {
		if b.i == b.n {
			n, err := b.r.Read(b.buf)
			if n == 0 {
				if err == nil {
					err = io.ErrNoProgress
				}
				return nil, err
			}
			b.i, b.n = 0, n
		}
		chunk := b.buf[b.i:b.n]
		end := len(chunk)
		for j, c := range chunk {
			if c == '\n' {
				end = j + 1
				break
			}
		}
		line = append(line, chunk[:end]...)
		b.i += end
		if len(line) > max {
			return nil, errors.New("request too long")
		}
		if line[len(line)-1] == '\n' {
			return line, nil
		}
	}
}

// Read reads what is buffered, then from the connection.
func (b *connReader) Read(p []byte) (int, error) {
	if b.i < b.n {
		n := copy(p, b.buf[b.i:b.n])
		b.i += n
		return n, nil
	}
	return b.r.Read(p)
}

// wait blocks until the exit is recorded, or the client goes away. While
// it blocks, the request does not keep the shim from parking: the
// connection is handed to the idle monitor.
func (m *monitor) wait(conn conn) (*exitStatus, error) {
	m.mu.Lock()
	m.busy--
	m.waiters[conn] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.busy++
		delete(m.waiters, conn)
		m.mu.Unlock()
	}()
	gone := make(chan struct{})
	go func() {
		var b [1]byte
		conn.Read(b[:]) // returns when the client closes (or sends, which it must not)
		close(gone)
	}()
	select {
	case <-m.exited:
		m.mu.Lock()
		e := *m.exit
		m.mu.Unlock()
		return &e, nil
	case <-gone:
		return nil, m.errorf(errdefs.ErrFailedPrecondition, "wait: the client went away")
	}
}

// attachClient is one attached connection. Output goes through q to a
// writer goroutine, so a slow client never blocks the container's output.
type attachClient struct {
	conn   conn
	mu     sync.Mutex
	q      chan outFrame
	closed bool
	exit   *exitStatus
}

type outFrame struct {
	typ  byte
	data []byte
}

// send queues data (shared, read-only) for the client; a client whose queue
// is full is dropped.
func (c *attachClient) send(typ byte, data []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	select {
	case c.q <- outFrame{typ, data}:
		return true
	default:
		c.closed = true
		close(c.q)
		return false
	}
}

// finish ends the stream: the writer sends what is queued, then the exit
// frame if e is not nil, then closes the connection.
func (c *attachClient) finish(e *exitStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.exit = e
	c.closed = true
	close(c.q)
}

func (c *attachClient) writer() {
	defer c.conn.Close()
	failed := false
	write := func(typ byte, data []byte) {
		if failed {
			return
		}
		c.conn.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
		if err := writeFrame(c.conn, typ, data); err != nil {
			failed = true
			c.mu.Lock()
			if !c.closed {
				c.closed = true
				close(c.q)
			}
			c.mu.Unlock()
		}
	}
	for f := range c.q {
		write(f.typ, f.data)
	}
	c.mu.Lock()
	e := c.exit
	c.mu.Unlock()
	if e != nil {
		write(frameExit, e.AppendJSON(nil))
	}
}

// broadcast sends a chunk of output to every attached client.
func (m *monitor) broadcast(typ byte, p []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.attached) == 0 {
		return
	}
	data := append([]byte(nil), p...)
	for c := range m.attached {
		if !c.send(typ, data) {
			delete(m.attached, c)
			m.log.Warn("dropped an attached client that did not keep up, or went away")
		}
	}
}

// attach serves an attach connection: output frames out, input frames in.
func (m *monitor) attach(conn *os.File, br *connReader, req request) {
	if req.Stdin && !m.cfg.Stdin {
		m.reply(conn, errorResponse(m.errorf(errdefs.ErrFailedPrecondition, "attach: stdin requested but the shim was spawned without --stdin")))
		conn.Close()
		return
	}
	c := &attachClient{conn: conn, q: make(chan outFrame, attachQueue)}
	m.reply(conn, response{State: m.state()})
	m.mu.Lock()
	exit := m.exit
	if exit == nil {
		m.attached[c] = struct{}{}
	}
	m.mu.Unlock()
	m.writers.Add(1)
	go func() {
		defer m.writers.Done()
		c.writer()
	}()
	if exit != nil {
		c.finish(exit)
		return
	}
	// The input side ends on the client's EOF (it may half-close its
	// socket once its input is done and still read output) or when the
	// writer closes the connection; the output side ends at the exit, or
	// when a write fails.
	buf := make([]byte, 0, 4096)
	for {
		typ, payload, err := readFrame(br, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				m.log.Debug("attach input ended", "err", err)
			}
			return
		}
		switch typ {
		case frameStdin:
			if req.Stdin {
				if err := m.writeStdin(payload); err != nil {
					m.log.Debug("attach: write stdin", "err", err)
				}
			}
		case frameStdinEOF:
			if req.Stdin && req.CloseStdinOnEOF {
				m.closeStdin()
			}
		case frameResize:
			if r, err := parseResize(payload); err == nil {
				if err := m.resize(&r); err != nil {
					m.log.Debug("attach: resize", "err", err)
				}
			}
		}
	}
}
