package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/internal/jsonstr"
	"github.com/skiff-containers/skiff/shim/proto"
)

// TestConstantsMatchProto checks the shim's copies of proto's constants.
func TestConstantsMatchProto(t *testing.T) {
	pairs := []struct{ got, want any }{
		{socketName, proto.SocketName}, {exitFileName, proto.ExitFileName}, {pidFileName, proto.PidFileName},
		{runtimeLogName, proto.RuntimeLogName}, {shimLogName, proto.ShimLogName},
		{opState, proto.OpState}, {opStart, proto.OpStart}, {opKill, proto.OpKill}, {opWait, proto.OpWait},
		{opAttach, proto.OpAttach}, {opCloseStdin, proto.OpCloseStdin}, {opResize, proto.OpResize},
		{opDelete, proto.OpDelete}, {opShutdown, proto.OpShutdown},
		{opExec, proto.OpExec}, {opPause, proto.OpPause}, {opResume, proto.OpResume},
		{statusCreated, proto.StatusCreated}, {statusRunning, proto.StatusRunning}, {statusStopped, proto.StatusStopped},
		{statusPaused, proto.StatusPaused},
		{frameStdout, proto.FrameStdout}, {frameStderr, proto.FrameStderr}, {frameExit, proto.FrameExit},
		{frameStdin, proto.FrameStdin}, {frameStdinEOF, proto.FrameStdinEOF}, {frameResize, proto.FrameResize},
		{maxFramePayload, proto.MaxFramePayload}, {classInternal, proto.ClassInternal},
	}
	for _, p := range pairs {
		if p.got != p.want {
			t.Errorf("shim has %v, proto %v", p.got, p.want)
		}
	}
	for _, err := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrNotImplemented, errors.New("other"),
		containerError("c", errdefs.ErrNotFound, "x"), wrapError(errdefs.ErrFailedPrecondition, os.ErrClosed, "y")} {
		if got, want := errorClass(err), proto.ErrorResponse(err).Class; got != want {
			t.Errorf("errorClass(%v) = %s, proto says %s", err, got, want)
		}
	}
}

var jsonStrings = []string{"", "plain", `quo"te`, `back\slash`, "ctl\x00\x01\x1f\b\f\n\r\t", "<html>&amp;",
	"caf\u00e9 \u2028\u2029 \U0001F600", "bad\xff\xfeutf8", "\x7f", "tab\tend"}

// TestJSONMatchesEncodingJSON checks the hand-written encoder against
// encoding/json on proto's types.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 120000000, time.UTC)
	for _, s := range jsonStrings {
		want, _ := json.Marshal(s)
		if got := jsonstr.Append(nil, s); !bytes.Equal(got, want) {
			t.Errorf("jsonstr.Append(%q) = %s, want %s", s, got, want)
		}
		e := &exitStatus{Code: 137, Signal: 9, Sec: ts.Unix(), Nsec: ts.Nanosecond()}
		st := &state{ID: s, Pid: 12, ShimPid: 11, Status: statusStopped, Bundle: "/b/" + s, Terminal: true, Exit: e}
		responses := []struct {
			mine   response
			theirs proto.Response
		}{
			{response{}, proto.Response{}},
			{response{Error: s, Class: "not-found"}, proto.Response{Error: s, Class: "not-found"}},
			{response{State: st}, proto.Response{State: &proto.State{ID: s, Pid: 12, ShimPid: 11, Status: proto.StatusStopped, Bundle: "/b/" + s, Terminal: true,
				Exit: &proto.Exit{Code: 137, Signal: 9, ExitedAt: ts}}}},
			{response{State: &state{ID: s, Status: statusRunning, Stdin: true}}, proto.Response{State: &proto.State{ID: s, Status: proto.StatusRunning, Stdin: true}}},
			{response{Exit: &exitStatus{Code: 3, Sec: ts.Unix(), Nsec: ts.Nanosecond() + 1}}, proto.Response{Exit: &proto.Exit{Code: 3, ExitedAt: ts.Add(time.Nanosecond)}}},
			{response{Pid: 4242}, proto.Response{Pid: 4242}},
			{response{State: &state{ID: s, Status: statusPaused}, Pid: 1}, proto.Response{State: &proto.State{ID: s, Status: proto.StatusPaused}, Pid: 1}},
		}
		for _, r := range responses {
			want, _ := json.Marshal(r.theirs)
			if got := r.mine.appendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("response\n got %s\nwant %s", got, want)
			}
		}
	}
}

// TestParseRequest checks the request decoder against encoding/json.
func TestParseRequest(t *testing.T) {
	var reqs []proto.Request
	for _, s := range jsonStrings {
		reqs = append(reqs, proto.Request{Op: s})
	}
	reqs = append(reqs,
		proto.Request{Op: proto.OpKill, Signal: 9, All: true},
		proto.Request{Op: proto.OpKill, Signal: -3},
		proto.Request{Op: proto.OpDelete, Force: true},
		proto.Request{Op: proto.OpAttach, Stdin: true, CloseStdinOnEOF: true},
		proto.Request{Op: proto.OpResize, Resize: &proto.Resize{Width: 65535, Height: 1}},
		proto.Request{Op: proto.OpExec, ExecID: "e1", Process: "/run/x/process.json", Terminal: true, Stdin: true, Resize: &proto.Resize{Width: 80, Height: 24}},
		proto.Request{Op: proto.OpPause}, proto.Request{Op: proto.OpResume},
	)
	var inputs []string
	for _, r := range reqs {
		data, _ := json.Marshal(r)
		inputs = append(inputs, string(data)+"\n")
	}
	inputs = append(inputs,
		`{"OP":"state","Signal":7,"unknown":{"a":[1,2,{"b":null}],"c":"\u00e9\ud83d\ude00"},"x":-1.5e3}`,
		`{"op":"a\ud800b\u00"}`, `{"op":"a\ud800b"}`, `{"op":null,"resize":null,"all":null}`,
		`{"signal":1.5}`, `{"signal":"9"}`, `{"signal":99999999999999999999}`, `{"all":1}`, `{"resize":{"width":70000}}`,
		`{"resize":{"width":-1}}`, `{"resize":[]}`, `[]`, `"x"`, `null`, ``, `{`, `{"op":"state"} x`, `{"op":"state",}`,
		`{"op" "state"}`, `{"op":"st`+"\x01"+`ate"}`, `{"signal":01}`, `{"signal":-}`, " {\"op\" : \"state\" } \r\n",
		`{"resize":{"width":3},"resize":{"height":4}}`, `{"op":"\/\b\f\n\r\t\\\""}`, "{\"op\":\"a\xffb\"}",
		`{"execid":"x","PROCESS":"/p","terminal":true}`, `{"terminal":"yes"}`, `{"process":7}`,
	)
	for _, in := range inputs {
		var want proto.Request
		werr := json.Unmarshal([]byte(in), &want)
		got, gerr := parseRequest([]byte(in))
		if (werr == nil) != (gerr == nil) {
			t.Errorf("parseRequest(%q) error %v, encoding/json's %v", in, gerr, werr)
			continue
		}
		if werr != nil {
			continue
		}
		mine := proto.Request{Op: got.Op, Signal: got.Signal, All: got.All, Force: got.Force, Stdin: got.Stdin, CloseStdinOnEOF: got.CloseStdinOnEOF,
			ExecID: got.ExecID, Process: got.Process, Terminal: got.Terminal}
		if got.Resize != nil {
			mine.Resize = &proto.Resize{Width: got.Resize.Width, Height: got.Resize.Height}
		}
		if !reflect.DeepEqual(mine, want) {
			t.Errorf("parseRequest(%q) = %+v, encoding/json says %+v", in, mine, want)
		}
	}
}

// TestExitFileAndFrames checks that proto reads what the shim writes.
func TestExitFileAndFrames(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	e := &exitStatus{Code: 130, Signal: 2, Sec: now.Unix(), Nsec: now.Nanosecond()}
	if err := writeExitFile(dir, e); err != nil {
		t.Fatal(err)
	}
	got, err := proto.ReadExitFile(dir)
	if err != nil || got.Code != 130 || got.Signal != 2 || !got.ExitedAt.Equal(now) {
		t.Fatalf("proto.ReadExitFile = %+v, %v", got, err)
	}
	var buf bytes.Buffer
	if err := writeFrame(&buf, frameStdout, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	proto.WriteFrame(&buf, proto.FrameResize, []byte(`{"width":80,"height":24}`))
	if typ, p, err := proto.ReadFrame(&buf, nil); err != nil || typ != proto.FrameStdout || string(p) != "hi" {
		t.Fatalf("proto.ReadFrame = %d %q %v", typ, p, err)
	}
	typ, p, err := readFrame(&buf, nil)
	if err != nil || typ != frameResize {
		t.Fatalf("readFrame = %d %q %v", typ, p, err)
	}
	if r, err := parseResize(p); err != nil || r != (resize{80, 24}) {
		t.Fatalf("parseResize = %+v, %v", r, err)
	}
	if err := writeFrame(&buf, frameStdin, make([]byte, maxFramePayload+1)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("oversized frame: %v", err)
	}
}

func TestParseLogEntry(t *testing.T) {
	level, msg, ok := parseLogEntry([]byte(`{"level":"error","msg":"container_linux.go:380: starting \"x\"","time":"2024-01-01T00:00:00Z"}`))
	if !ok || !keyIs(level, "ERROR") || msg != `container_linux.go:380: starting "x"` {
		t.Errorf("parseLogEntry = %q %q %v", level, msg, ok)
	}
}
