package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"1024", 1024, false},
		{"-1", -1, false},
		{"64m", 64 << 20, false},
		{"64M", 64 << 20, false},
		{"64mb", 64 << 20, false},
		{"1g", 1 << 30, false},
		{"1.5k", 1536, false},
		{"2t", 2 << 40, false},
		{"0", 0, false},
		{"", 0, true},
		{"lots", 0, true},
		{"-5", 0, true},
		{"12x", 0, true},
		{"99999999999t", 0, true},
	}
	for _, tt := range tests {
		got, err := parseBytes(tt.in)
		if tt.err {
			if err == nil || !errdefs.IsInvalidArgument(err) {
				t.Errorf("parseBytes(%q) = %d, %v; want an invalid-argument error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFilterPs(t *testing.T) {
	ps := "UID        PID  PPID  C STIME TTY          TIME CMD\n" +
		"root         1     0  0 10:00 ?        00:00:01 /sbin/init\n" +
		"root       412     1  0 10:01 ?        00:00:00 sleep 30\n" +
		"root      4120     1  0 10:01 ?        00:00:00 sh\n"
	tests := []struct {
		name string
		out  string
		pids []int
		want []string // lines after the header
		err  bool
	}{
		{"keeps the container's pids only", ps, []int{412}, []string{"sleep 30"}, false},
		{"no prefix matches", ps, []int{41}, nil, false},
		{"several", ps, []int{1, 4120}, []string{"/sbin/init", "sh"}, false},
		{"no PID column", "USER COMMAND\nroot x\n", []int{1}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := filterPs(&buf, []byte(tt.out), tt.pids)
			if tt.err {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
			if !strings.HasPrefix(lines[0], "UID") {
				t.Fatalf("header lost: %q", buf.String())
			}
			if len(lines)-1 != len(tt.want) {
				t.Fatalf("got %q, want %d process lines", lines[1:], len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasSuffix(lines[i+1], w) {
					t.Errorf("line %d = %q, want ...%q", i+1, lines[i+1], w)
				}
			}
		})
	}
}
