package test

import (
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// TestProcAttr checks the process attributes that runtime-spec 1.2 added
// (personality, scheduler, ioPriority, execCPUAffinity). runc 1.1, the
// oracle, predates them and ignores them, so only the runtime under test is
// run, against the values the spec prescribes.
func TestProcAttr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		args   []string
		mutate func(s *specs.Spec)
		want   string
	}{
		{"personality-linux32", []string{"uname", "-m"},
			func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, "i686"},
		{"io-priority-idle", []string{"ionice"},
			func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE} }, "idle"},
		{"scheduler-batch-nice", []string{"awk", "{print $19, $41}", "/proc/self/stat"},
			func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 5} }, "5 3"},
		{"exec-cpu-affinity", []string{"sh", "-c", "taskset -p $$ | sed 's/.*: //'"},
			func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0", Final: "1"} }, "2"},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
			bundle, spec := testutil.BusyboxBundle(t, c.args...)
			c.mutate(spec)
			testutil.WriteSpec(t, bundle, spec)
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
			if code != 0 || strings.TrimSpace(stdout) != c.want {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", c.name, code, stdout, stderr, c.want)
			}
		})
	}
}
