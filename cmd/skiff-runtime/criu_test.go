package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
)

// TestCRIURefusal runs checkpoint and restore, with runc's flags, against
// fake criu binaries on PATH: each refusal must come after flag parsing and
// say precisely why (no criu, criu check failing, not implemented).
func TestCRIURefusal(t *testing.T) {
	failing := "#!/bin/sh\n" +
		"echo \"$@\" > \"${0%/*}/args\"\n" +
		"echo 'Warn (criu/kerndat.c:1): something harmless' >&2\n" +
		"echo 'Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds' >&2\n" +
		"echo 'Error (criu/crtools.c:260): Could not initialize kernel features detection.' >&2\n" +
		"exit 1\n"
	passing := "#!/bin/sh\necho \"$@\" > \"${0%/*}/args\"\necho 'Looks good.'\n"
	silent := "#!/bin/sh\nexit 3\n"
	checkpoint := []string{"checkpoint", "--image-path", "/img", "--work-path", "/work", "--leave-running",
		"--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks", "--manage-cgroups-mode", "soft",
		"--empty-ns", "network", "--auto-dedup", "--pre-dump", "--parent-path", "../p", "c1"}
	restore := []string{"restore", "--image-path", "/img", "-b", "/bundle", "-d", "--pid-file", "/p",
		"--console-socket", "/s", "--no-pivot", "--no-subreaper", "--tcp-established", "--lsm-profile", "x", "c1"}
	tests := []struct {
		name     string
		criu     string // script installed as criu on PATH; "" for none
		args     []string
		class    error
		mentions []string
		checked  bool // criu was run as `criu check`
	}{
		{name: "checkpoint without criu", args: checkpoint, class: errdefs.ErrNotImplemented,
			mentions: []string{"checkpoint:", "not installed", "install criu", "not implement"}},
		{name: "restore without criu", args: restore, class: errdefs.ErrNotImplemented,
			mentions: []string{"restore:", "not installed", "install criu"}},
		{name: "checkpoint, criu check fails", criu: failing, args: checkpoint, class: errdefs.ErrNotImplemented, checked: true,
			mentions: []string{"checkpoint:", "CRIU cannot work on this kernel", `"Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"`, "exit status 1"}},
		{name: "restore, criu check fails silently", criu: silent, args: restore, class: errdefs.ErrNotImplemented,
			mentions: []string{"restore:", "CRIU cannot work on this kernel", "exit status 3", "criu printed nothing"}},
		{name: "checkpoint, criu works", criu: passing, args: checkpoint, class: errdefs.ErrNotImplemented, checked: true,
			mentions: []string{"checkpoint:", "works on this host", "not implemented by this skiff-runtime"}},
		{name: "restore, criu works", criu: passing, args: restore, class: errdefs.ErrNotImplemented, checked: true,
			mentions: []string{"restore:", "works on this host"}},
		{name: "unknown flag is a flag error", criu: passing, args: []string{"checkpoint", "--no-such-flag", "c1"},
			mentions: []string{"unknown flag"}},
		{name: "no container id", criu: passing, args: []string{"checkpoint", "--leave-running"}, class: errdefs.ErrInvalidArgument,
			mentions: []string{"expects a container id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.criu != "" {
				if err := os.WriteFile(filepath.Join(dir, "criu"), []byte(tt.criu), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", dir)
			g := &globals{}
			root := newRoot(g)
			root.SetArgs(append([]string{"--root", t.TempDir()}, tt.args...))
			err := root.Execute()
			if g.closeLog != nil {
				g.closeLog()
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.class != nil && !errors.Is(err, tt.class) {
				t.Errorf("error %q: want class %v", err, tt.class)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			args, _ := os.ReadFile(filepath.Join(dir, "args"))
			if got := strings.TrimSpace(string(args)) == "check"; got != tt.checked {
				t.Errorf("criu was run with %q; want `criu check` run: %v", args, tt.checked)
			}
		})
	}
}
