package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/container"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want unix.Signal
		err  bool
	}{
		{"9", unix.SIGKILL, false},
		{"KILL", unix.SIGKILL, false},
		{"SIGKILL", unix.SIGKILL, false},
		{"kill", unix.SIGKILL, false},
		{"TERM", unix.SIGTERM, false},
		{"sigusr1", unix.SIGUSR1, false},
		{"15", unix.SIGTERM, false},
		{"0", 0, true},
		{"65", 0, true},
		{"-1", 0, true},
		{"NOPE", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if tt.err {
			if err == nil || !errdefs.IsInvalidArgument(err) {
				t.Errorf("parseSignal(%q) = %v, %v; want an invalid-argument error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestPrintList(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	states := []*container.State{
		{OCIVersion: "1.3.0", ID: "a", Pid: 10, Status: container.Running, Bundle: "/b", Rootfs: "/b/rootfs", Created: created, Owner: "root"},
		{OCIVersion: "1.3.0", ID: "b", Status: container.Stopped, Bundle: "/c", Rootfs: "/c/rootfs", Created: created, Owner: "root"},
	}
	tests := []struct {
		name   string
		quiet  bool
		format string
		check  func(t *testing.T, out string)
	}{
		{"quiet", true, "table", func(t *testing.T, out string) {
			if out != "a\nb\n" {
				t.Errorf("got %q", out)
			}
		}},
		{"table", false, "table", func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "running") || !strings.Contains(lines[2], "stopped") {
				t.Errorf("got %q", out)
			}
		}},
		{"json", false, "json", func(t *testing.T, out string) {
			var got []map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("not JSON: %v: %q", err, out)
			}
			for _, k := range []string{"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"} {
				if _, ok := got[0][k]; !ok {
					t.Errorf("field %q missing from %v", k, got[0])
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := printList(&buf, states, tt.quiet, tt.format); err != nil {
				t.Fatal(err)
			}
			tt.check(t, buf.String())
		})
	}
}

func TestPrintListEmptyJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := printList(&buf, nil, false, "json"); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("empty list as JSON = %q, want []", buf.String())
	}
}
