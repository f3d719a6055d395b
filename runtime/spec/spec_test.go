package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

func writeBundle(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		wantErr error
		subs    []string
	}{
		{"empty file", "", errdefs.ErrInvalidArgument, []string{"config.json is empty"}},
		{"whitespace only", " \n\t", errdefs.ErrInvalidArgument, []string{"config.json is empty"}},
		{
			"syntax error on line 3",
			"{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {,}\n}",
			errdefs.ErrInvalidArgument,
			[]string{"invalid JSON at line 3, column 15", "invalid character ','"},
		},
		{
			"truncated",
			"{\"ociVersion\": \"1.0.2\"",
			errdefs.ErrInvalidArgument,
			[]string{"invalid JSON at line 1", "unexpected end of JSON input"},
		},
		{
			"trailing garbage",
			"{}\n}",
			errdefs.ErrInvalidArgument,
			[]string{"invalid JSON at line 2, column 1"},
		},
		{
			"args is a number",
			`{"ociVersion": "1.0.2", "process": {"args": 5}}`,
			errdefs.ErrInvalidArgument,
			[]string{"config.json: process.args: expected array of strings, got number"},
		},
		{
			"one arg is a number",
			`{"process": {"args": ["sh", 1]}}`,
			errdefs.ErrInvalidArgument,
			[]string{"config.json: process.args[1]: expected string, got number"},
		},
		{
			"negative uid",
			`{"process": {"user": {"uid": -1}}}`,
			errdefs.ErrInvalidArgument,
			[]string{"config.json: process.user.uid: expected non-negative integer (32-bit), got number -1"},
		},
		{
			"uid too large",
			`{"process": {"user": {"uid": 4294967296}}}`,
			errdefs.ErrInvalidArgument,
			[]string{"process.user.uid: expected non-negative integer (32-bit), got number 4294967296"},
		},
		{
			"fractional rlimit",
			`{"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1.5, "soft": 1}]}}`,
			errdefs.ErrInvalidArgument,
			[]string{"process.rlimits[0].hard: expected non-negative integer (64-bit), got number 1.5"},
		},
		{
			"mount destination deep in an array",
			`{"mounts": [{"destination": "/a"}, {"destination": ["/b"]}]}`,
			errdefs.ErrInvalidArgument,
			[]string{"config.json: mounts[1].destination: expected string, got array"},
		},
		{
			"sysctl value",
			`{"linux": {"sysctl": {"net.ipv4.ip_forward": 1}}}`,
			errdefs.ErrInvalidArgument,
			[]string{`linux.sysctl["net.ipv4.ip_forward"]: expected string, got number`},
		},
		{
			"terminal as string",
			`{"process": {"terminal": "yes"}}`,
			errdefs.ErrInvalidArgument,
			[]string{"process.terminal: expected boolean, got string"},
		},
		{
			"linux is an array",
			`{"linux": []}`,
			errdefs.ErrInvalidArgument,
			[]string{"config.json: linux: expected object, got array"},
		},
		{
			"top level is an array",
			`[]`,
			errdefs.ErrInvalidArgument,
			[]string{"config.json: (top level): expected object, got array"},
		},
		{
			"field name matched case-insensitively, as encoding/json does",
			`{"Process": {"ARGS": "sh"}}`,
			errdefs.ErrInvalidArgument,
			[]string{"Process.ARGS: expected array of strings, got string"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(writeBundle(t, tt.config))
			if err == nil {
				t.Fatalf("Load = %+v, nil; want an error", s)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			for _, sub := range tt.subs {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not contain %q", err, sub)
				}
			}
		})
	}
}

func TestLoadBundleErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		bundle  string
		wantErr error
		sub     string
	}{
		{"missing bundle", filepath.Join(dir, "nope"), errdefs.ErrNotFound, `bundle directory "` + filepath.Join(dir, "nope") + `" does not exist`},
		{"bundle is a file", file, errdefs.ErrInvalidArgument, "is not a directory"},
		{"no config.json", dir, errdefs.ErrNotFound, "has no config.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.bundle)
			if !errors.Is(err, tt.wantErr) || err == nil || !strings.Contains(err.Error(), tt.sub) {
				t.Errorf("Load(%q) error = %v; want %v containing %q", tt.bundle, err, tt.wantErr, tt.sub)
			}
		})
	}
}

func TestLoadIgnoresUnknownFields(t *testing.T) {
	s, err := Load(writeBundle(t, `{
		"ociVersion": "1.0.2",
		"someVendorExtension": {"x": [1, 2]},
		"process": {"args": ["sh"], "cwd": "/", "futureField": 7, "user": {"uid": 1000, "gid": 1000}},
		"root": {"path": "rootfs"},
		"linux": {"namespaces": [{"type": "pid", "extra": true}]}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.0.2" || s.Process.Args[0] != "sh" || s.Process.User.UID != 1000 || s.Linux.Namespaces[0].Type != specs.PIDNamespace {
		t.Errorf("Load decoded %+v", s)
	}
}

func TestLoadDefault(t *testing.T) {
	b, err := os.ReadFile("testdata/runc-1.1.5-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(writeBundle(t, string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "runc" || len(s.Mounts) != 7 || s.Process.Rlimits[0].Hard != 1024 {
		t.Errorf("Load(runc's default) = %+v", s)
	}
}

func TestRootfsPath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		root   *specs.Root
		bundle string
		want   string
	}{
		{&specs.Root{Path: "rootfs"}, "/b/bundle", "/b/bundle/rootfs"},
		{&specs.Root{Path: "./x/../rootfs/"}, "/b/bundle", "/b/bundle/rootfs"},
		{&specs.Root{Path: "../shared-rootfs"}, "/b/bundle", "/b/shared-rootfs"},
		{&specs.Root{Path: "/abs//rootfs/"}, "/b/bundle", "/abs/rootfs"},
		{&specs.Root{Path: "rootfs"}, "relative", filepath.Join(wd, "relative/rootfs")},
		{&specs.Root{Path: ""}, "/b", ""},
		{nil, "/b", ""},
	}
	for _, tt := range tests {
		if got := RootfsPath(&specs.Spec{Root: tt.root}, tt.bundle); got != tt.want {
			t.Errorf("RootfsPath(%+v, %q) = %q, want %q", tt.root, tt.bundle, got, tt.want)
		}
	}
}
