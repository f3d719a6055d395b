package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

func TestParseDetachKeys(t *testing.T) {
	cases := []struct {
		in   string
		want []byte
		fail bool
	}{
		{in: "", want: []byte{0x10, 0x11}},
		{in: "ctrl-p,ctrl-q", want: []byte{0x10, 0x11}},
		{in: "ctrl-a,x", want: []byte{1, 'x'}},
		{in: "CTRL-@,ctrl-[,ctrl-_", want: []byte{0, 27, 31}},
		{in: "ctrl-1", fail: true},
		{in: "ab", fail: true},
		{in: "ctrl-p,", fail: true},
	}
	for _, tc := range cases {
		got, err := parseDetachKeys(tc.in)
		if (err != nil) != tc.fail || !tc.fail && !bytes.Equal(got, tc.want) {
			t.Errorf("parseDetachKeys(%q) = %v, %v; want %v (failure %v)", tc.in, got, err, tc.want, tc.fail)
		}
	}
}

func TestEscapeProxy(t *testing.T) {
	keys := []byte{0x10, 0x11}
	cases := []struct {
		name     string
		in       string
		out      string
		detached bool
	}{
		{name: "plain", in: "echo hi\n", out: "echo hi\n"},
		{name: "detach", in: "ab\x10\x11cd", out: "ab", detached: true},
		{name: "partial then other", in: "a\x10b", out: "a\x10b"},
		{name: "prefix twice", in: "\x10\x10\x11", out: "\x10", detached: true},
		{name: "partial at the end", in: "x\x10", out: "x\x10"},
	}
	for _, tc := range cases {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = strings.NewReader(tc.in)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			p := &escapeProxy{r: r, keys: keys}
			var out bytes.Buffer
			buf := make([]byte, 64)
			var err error
			for err == nil {
				var n int
				n, err = p.Read(buf)
				out.Write(buf[:n])
			}
			if out.String() != tc.out || errors.Is(err, errDetached) != tc.detached {
				t.Errorf("%s (one byte %v): %q, %v; want %q, detached %v", tc.name, oneByte, out.String(), err, tc.out, tc.detached)
			}
		}
	}
}

func TestUpdateFlags(t *testing.T) {
	cases := []struct {
		name    string
		o       updateFlags
		changed []string
		check   func(*skiffv1.UpdateContainerRequest) bool
		fail    bool
	}{
		{name: "none", fail: true},
		{name: "memory", o: updateFlags{res: resourceFlags{memory: "64m"}}, changed: []string{"memory"},
			check: func(r *skiffv1.UpdateContainerRequest) bool { return r.GetResources().GetMemory() == 64<<20 }},
		{name: "cpus", o: updateFlags{res: resourceFlags{cpus: "1.5"}}, changed: []string{"cpus"},
			check: func(r *skiffv1.UpdateContainerRequest) bool { return r.GetResources().GetNanoCpus() == 1.5e9 }},
		{name: "swap unlimited", o: updateFlags{res: resourceFlags{memorySwap: "-1"}}, changed: []string{"memory-swap"},
			check: func(r *skiffv1.UpdateContainerRequest) bool { return r.GetResources().GetMemorySwap() == -1 }},
		{name: "restart", o: updateFlags{restart: "on-failure:2"}, changed: []string{"restart"},
			check: func(r *skiffv1.UpdateContainerRequest) bool {
				return r.GetResources() == nil && r.GetRestartPolicy().GetName() == "on-failure" && r.GetRestartPolicy().GetMaxRetries() == 2
			}},
		{name: "pids-limit 0 is unlimited", changed: []string{"pids-limit"},
			check: func(r *skiffv1.UpdateContainerRequest) bool { return r.GetResources().GetPidsLimit() == -1 }},
		{name: "memory-reservation", o: updateFlags{res: resourceFlags{memoryReservation: "32m"}}, changed: []string{"memory-reservation"},
			check: func(r *skiffv1.UpdateContainerRequest) bool { return r.GetResources().GetMemoryReservation() == 32<<20 }},
		{name: "bad memory", o: updateFlags{res: resourceFlags{memory: "lots"}}, changed: []string{"memory"}, fail: true},
		{name: "bad restart", o: updateFlags{restart: "sometimes"}, changed: []string{"restart"}, fail: true},
	}
	for _, tc := range cases {
		changed := func(name string) bool {
			for _, c := range tc.changed {
				if c == name {
					return true
				}
			}
			return false
		}
		req, err := tc.o.toRequest("c1", changed)
		if (err != nil) != tc.fail || err == nil && !tc.check(req) {
			t.Errorf("%s: %v, %v", tc.name, req, err)
		}
	}
}

func TestStatsRow(t *testing.T) {
	prev := &skiffv1.ContainerStats{Id: "0123456789abcdef", Name: "web", CpuUsageNs: 1e9, SystemCpuNs: 100e9, OnlineCpus: 2}
	last := &skiffv1.ContainerStats{Id: "0123456789abcdef", Name: "web", CpuUsageNs: 1.5e9, SystemCpuNs: 102e9, OnlineCpus: 2,
		MemoryUsage: 3 << 20, MemoryLimit: 64 << 20, NetRx: 1500, NetTx: 0, BlockRead: 2e6, BlockWrite: 4096, Pids: 3}
	var out bytes.Buffer
	rows := []row{statsRow{e: statsEntry{ref: "web", prev: prev, last: last}}}
	if err := (formatter{headers: statsHeaders(), defaultTable: statsTable}).render(&out, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("header %q lacks %q", lines[0], w)
		}
	}
	for _, w := range []string{"0123456789ab", "web", "50.00%", "3MiB / 64MiB", "4.69%", "1.5kB / 0B", "2MB / 4.1kB", " 3"} {
		if !strings.Contains(lines[1], w) {
			t.Errorf("row %q lacks %q", lines[1], w)
		}
	}
}
