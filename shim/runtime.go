package shim

import (
	"bytes"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runtimeTimeout bounds every runtime command; createTimeout bounds
// create's wait for the container's pty master.
const (
	runtimeTimeout = 60 * time.Second
	createTimeout  = 120 * time.Second
)

// ociRuntime runs the OCI runtime's command line (runc's commands and
// flags) through the reaper.
type ociRuntime struct {
	bin     string
	root    string
	args    []string // extra global flags (--runtime-arg)
	logPath string   // --log of the runtime, in JSON, read for errors
	reaper  *reaper
}

// argv returns the runtime's command line for the given command and args.
func (r *ociRuntime) argv(cmd ...string) []string {
	argv := []string{r.bin}
	if r.root != "" {
		argv = append(argv, "--root", r.root)
	}
	argv = append(argv, "--log", r.logPath, "--log-format", "json")
	argv = append(argv, r.args...)
	return append(argv, cmd...)
}

// runtimeStdio are the files a runtime command gets as 0, 1 and 2. A nil
// file is /dev/null, except that stdout and stderr are captured when nil.
type runtimeStdio struct {
	stdin, stdout, stderr *os.File
}

// run runs the runtime with cmd and returns its stdout. A failure's error
// carries the runtime's own message (its stderr, else the last error of its
// log).
func (r *ociRuntime) run(stdio runtimeStdio, cmd ...string) ([]byte, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	files := []*os.File{devnull, stdio.stdout, stdio.stderr}
	if stdio.stdin != nil {
		files[0] = stdio.stdin
	}
	var outR, errR *os.File
	if stdio.stdout == nil {
		var w *os.File
		if outR, w, err = os.Pipe(); err != nil {
			return nil, err
		}
		defer outR.Close()
		defer w.Close()
		files[1] = w
	}
	if stdio.stderr == nil {
		var w *os.File
		if errR, w, err = os.Pipe(); err != nil {
			return nil, err
		}
		defer errR.Close()
		defer w.Close()
		files[2] = w
	}
	argv := r.argv(cmd...)
	logSize := fileSize(r.logPath)
	pid, ch, err := r.reaper.start(argv, "/", files)
	if err != nil {
		return nil, wrapError(nil, err, "run "+r.bin)
	}
	// Our copies of the write ends must go for the reads to see EOF.
	if outR != nil {
		files[1].Close()
	}
	if errR != nil {
		files[2].Close()
	}
	outC := readAllAsync(outR)
	errC := readAllAsync(errR)
	var ws unix.WaitStatus
	timeout := make(chan struct{})
	timer := time.AfterFunc(runtimeTimeout, func() { close(timeout) })
	timedOut := false
	select {
	case ws = <-ch:
	case <-timeout:
		timedOut = true
		r.reaper.kill(pid, unix.SIGKILL)
		ws = <-ch
	}
	timer.Stop()
	stdout, stderr := <-outC, <-errC
	if ws.Exited() && ws.ExitStatus() == 0 {
		return stdout, nil
	}
	msg := strings.TrimSpace(string(stderr))
	if logMsg := lastLogError(r.logPath, logSize); logMsg != "" {
		msg = logMsg
	}
	if msg == "" {
		msg = describeStatus(ws)
	}
	if timedOut {
		msg += " (killed after " + durationString(runtimeTimeout) + ")"
	}
	return stdout, newError(nil, path.Base(r.bin)+" "+strings.Join(cmd, " ")+": "+msg)
}

// readAllAsync reads f to its end (at most 1 MiB is kept) in a goroutine.
func readAllAsync(f *os.File) <-chan []byte {
	ch := make(chan []byte, 1)
	if f == nil {
		ch <- nil
		return ch
	}
	go func() {
		data, _ := io.ReadAll(io.LimitReader(f, 1<<20))
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		ch <- data
	}()
	return ch
}

func describeStatus(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by signal " + unix.SignalName(ws.Signal())
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

func fileSize(path string) int64 {
	st, err := stat(path)
	if err != nil {
		return 0
	}
	return st.Size
}

// lastLogError returns the message of the last error-level entry of the
// runtime's JSON log written after offset from (runc's and skiff-runtime's
// log have "level" and "msg"; crun's too).
func lastLogError(file string, from int64) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	// What one command logs is small; read at most 4 MiB of it.
	data, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	var last string
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if !bytes.Contains(line, []byte(`"msg"`)) {
			continue
		}
		if level, msg, ok := parseLogEntry(line); ok && keyIs(level, "error") && msg != "" {
			last = msg
		}
	}
	return last
}

// parseLogEntry decodes the "level" and "msg" of one JSON log entry.
func parseLogEntry(line []byte) (level, msg string, ok bool) {
	d := &jsonDecoder{b: line}
	err := d.object(func(key string) error {
		switch {
		case keyIs(key, "level"):
			return d.str(&level)
		case keyIs(key, "msg"):
			return d.str(&msg)
		}
		return d.skip()
	})
	if err == nil {
		err = d.end()
	}
	return level, msg, err == nil
}
