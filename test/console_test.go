package test

import (
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// TestConsoleSocket runs a container with process.terminal and
// --console-socket, as containerd does for `-t`, and compares what the
// container sees of its terminal.
func TestConsoleSocket(t *testing.T) {
	t.Parallel()
	var outs [2]string
	oracle, subject := newRuntimes(t)
	for i, rt := range []*testutil.Runtime{oracle, subject} {
		bundle, spec := testutil.BusyboxBundle(t, "sh", "-c",
			"tty; stty size; test -c /dev/console && echo console-ok; echo TERM=$TERM; ls -l /proc/self/fd/0 | sed 's/.*-> //'; exit 4")
		spec.Process.Terminal = true
		spec.Process.ConsoleSize = &specs.Box{Height: 40, Width: 100}
		testutil.WriteSpec(t, bundle, spec)
		dir := t.TempDir()
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle, dir)
		sock := testutil.NewConsoleSocket(t, dir)
		ctx := testContext(t, 60*time.Second)
		type received struct {
			master interface {
				Close() error
			}
			out string
			err error
		}
		got := make(chan received, 1)
		go func() {
			m, err := sock.Receive(20 * time.Second)
			if err != nil {
				got <- received{err: err}
				return
			}
			defer m.Close()
			out, err := testutil.ReadConsole(m, 20*time.Second)
			got <- received{out: out, err: err}
		}()
		if err := rt.Create(ctx, id, bundle, "--console-socket", sock.Path); err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Errorf("%s: %v", rt, r.err)
		}
		outs[i] = strings.ReplaceAll(r.out, "\r\n", "\n")
		st, err := rt.WaitStatus(ctx, id, "stopped", 10*time.Second)
		if err != nil {
			t.Error(err)
		} else if st.Status != "stopped" {
			t.Errorf("%s: status %q", rt, st.Status)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Error(err)
		}
	}
	wantContains("/dev/pts/0", "40 100", "console-ok", "TERM=xterm")(t, outs[0])
	if outs[0] != outs[1] {
		t.Errorf("the terminal looks different:\n%s", lineDiff(outs[0], outs[1]))
	}
}
