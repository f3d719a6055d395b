package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/proto"
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

// serve accepts connections until the listener is closed.
func (m *monitor) serve() {
	for {
		conn, err := accept(m.ln)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				m.log.Error("accept on the control socket", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		go m.handle(conn)
	}
}

// handle serves the one request of a connection.
func (m *monitor) handle(conn *os.File) {
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	br := bufio.NewReaderSize(conn, 512)
	line, err := readLine(br, maxRequest)
	if err != nil {
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	var req proto.Request
	if err := json.Unmarshal(line, &req); err != nil {
		m.reply(conn, proto.ErrorResponse(m.errorf(errdefs.ErrInvalidArgument, "malformed request: %v", err)))
		conn.Close()
		return
	}
	m.log.Debug("request", "op", req.Op)
	ctx := context.Background()
	var resp proto.Response
	var after func()
	switch req.Op {
	case proto.OpState:
		resp.State = m.state()
	case proto.OpStart:
		err = m.start(ctx)
	case proto.OpKill:
		err = m.kill(ctx, req.Signal, req.All)
	case proto.OpWait:
		resp.Exit, err = m.wait(conn)
	case proto.OpAttach:
		m.attach(conn, br, req)
		return // attach owns conn
	case proto.OpCloseStdin:
		err = m.closeStdin()
	case proto.OpResize:
		err = m.resize(req.Resize)
	case proto.OpDelete:
		if err = m.delete(ctx, req.Force); err == nil {
			resp.State = m.state()
			after = m.requestQuit
		}
	case proto.OpShutdown:
		if err = m.shutdown(req.Force); err == nil {
			after = m.requestQuit
		}
	default:
		err = m.errorf(errdefs.ErrNotImplemented, "unknown request %q (known: state, start, kill, wait, attach, close-stdin, resize, delete, shutdown)", req.Op)
	}
	if err != nil {
		m.log.Warn("request failed", "op", req.Op, "err", err)
		resp = proto.ErrorResponse(err)
	}
	m.reply(conn, resp)
	conn.Close()
	if after != nil {
		after()
	}
}

func (m *monitor) reply(conn conn, resp proto.Response) {
	data, err := json.Marshal(resp)
	if err != nil {
		data, _ = json.Marshal(proto.ErrorResponse(err))
	}
	conn.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
	conn.Write(append(data, '\n'))
	conn.SetWriteDeadline(time.Time{})
}

// readLine reads one "\n"-terminated line of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, errors.New("request too long")
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// wait blocks until the exit is recorded, or the client goes away.
func (m *monitor) wait(conn conn) (*proto.Exit, error) {
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
	exit   *proto.Exit
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
func (c *attachClient) finish(e *proto.Exit) {
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
		if err := proto.WriteFrame(c.conn, typ, data); err != nil {
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
		data, _ := json.Marshal(e)
		write(proto.FrameExit, data)
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
func (m *monitor) attach(conn *os.File, br *bufio.Reader, req proto.Request) {
	if req.Stdin && !m.cfg.Stdin {
		m.reply(conn, proto.ErrorResponse(m.errorf(errdefs.ErrFailedPrecondition, "attach: stdin requested but the shim was spawned without --stdin")))
		conn.Close()
		return
	}
	c := &attachClient{conn: conn, q: make(chan outFrame, attachQueue)}
	m.reply(conn, proto.Response{State: m.state()})
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
		typ, payload, err := proto.ReadFrame(br, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				m.log.Debug("attach input ended", "err", err)
			}
			return
		}
		switch typ {
		case proto.FrameStdin:
			if req.Stdin {
				if err := m.writeStdin(payload); err != nil {
					m.log.Debug("attach: write stdin", "err", err)
				}
			}
		case proto.FrameStdinEOF:
			if req.Stdin && req.CloseStdinOnEOF {
				m.closeStdin()
			}
		case proto.FrameResize:
			var r proto.Resize
			if json.Unmarshal(payload, &r) == nil {
				if err := m.resize(&r); err != nil {
					m.log.Debug("attach: resize", "err", err)
				}
			}
		}
	}
}
