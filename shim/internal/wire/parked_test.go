package wire

import (
	"reflect"
	"strings"
	"testing"
)

func TestParkedRoundTrip(t *testing.T) {
	cases := []*Parked{
		{ID: "c1", StateDir: "/run/s", Pid: 42, Listener: 3, Log: 4, Out: -1, Err: -1, In: -1, ShimExe: -1, IdleExe: -1},
		{
			ID: "a b=c", Bundle: "/b/with space", StateDir: "/s\n", Terminal: true, Stdin: true, Debug: true,
			Pid: 7, Started: true, Paused: true, StdinClosed: true,
			Exit:     &Exit{Code: 137, Signal: 9, Sec: 1700000000, Nsec: 123},
			Listener: 3, Log: 4, Out: 5, Err: -1, In: 6, OutEnded: true, ShimExe: 12, IdleExe: 13,
			OutPending: []byte("half a line\x00\xff"), ErrPending: []byte("e"),
			Waiters:  []int{8, 9},
			Requests: []Request{{Conn: 10, Data: []byte(`{"op":"kill"}` + "\n")}, {Conn: 11, Data: []byte{}}},
		},
		{ID: "x", StateDir: "/s", Pid: 1, Listener: 0, Log: 1, Out: 2, Err: 3, In: -1, ShimExe: -1, IdleExe: 7, Exit: &Exit{Code: 0, Sec: -5, Nsec: 999999999}},
	}
	for _, p := range cases {
		enc := p.Encode()
		if strings.ContainsAny(enc, "\n\x00") {
			t.Errorf("Encode(%+v) = %q: holds a newline or NUL", p, enc)
		}
		got, err := DecodeParked(enc)
		if err != nil {
			t.Fatalf("DecodeParked(%q): %v", enc, err)
		}
		// An empty request is decoded as no bytes.
		for i := range got.Requests {
			if len(got.Requests[i].Data) == 0 && len(p.Requests[i].Data) == 0 {
				got.Requests[i].Data = p.Requests[i].Data
			}
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip of %q:\n got %+v\nwant %+v", enc, got, p)
		}
		var want []int
		for _, fd := range append([]int{p.Listener, p.Log, p.Out, p.Err, p.In, p.ShimExe, p.IdleExe}, p.Waiters...) {
			if fd >= 0 {
				want = append(want, fd)
			}
		}
		for _, r := range p.Requests {
			want = append(want, r.Conn)
		}
		if !reflect.DeepEqual(p.Fds(), want) {
			t.Errorf("Fds() = %v, want %v", p.Fds(), want)
		}
	}
}

func TestDecodeParkedRefuses(t *testing.T) {
	good := (&Parked{ID: "c", StateDir: "/s", Pid: 2, Listener: 3, Log: 4, Out: -1, Err: -1, In: -1}).Encode()
	for _, s := range []string{
		"",
		good + " nope=1",
		good + " junk",
		good + " started=2",
		good + " out=x",
		good + " out-pending=abc",
		good + " out-pending=zz",
		good + " exit=1,2,3",
		good + " waiters=1,,2",
		good + " requests=5:zz",
		strings.Replace(good, "pid=2", "pid=0", 1),
		strings.Replace(good, "listener=3", "listener=-1", 1),
		strings.Replace(good, "id=63 ", "", 1),
	} {
		if p, err := DecodeParked(s); err == nil {
			t.Errorf("DecodeParked(%q) = %+v, want an error", s, p)
		}
	}
}
