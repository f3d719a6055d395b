package procattr

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		spec specs.Spec
		err  string // substring of the error; "" = valid
	}{
		{"empty", specs.Spec{Process: &specs.Process{}}, ""},
		{"linux32", specs.Spec{Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32}}}, ""},
		{"bad domain", specs.Spec{Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: "BSD"}}}, "linux.personality.domain"},
		{"personality flags", specs.Spec{Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: specs.PerLinux, Flags: []specs.LinuxPersonalityFlag{"X"}}}}, "linux.personality.flags"},
		{"batch nice", specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: specs.SchedBatch, Nice: 5}}}, ""},
		{"bad policy", specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: "SCHED_FAST"}}}, "process.scheduler.policy"},
		{"nice range", specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: specs.SchedOther, Nice: 20}}}, "process.scheduler.nice"},
		{"fifo needs priority", specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: specs.SchedFIFO}}}, "process.scheduler.priority"},
		{"other with priority", specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: specs.SchedOther, Priority: 3}}}, "process.scheduler.priority"},
		{"deadline params", specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 10, Deadline: 5}}}, "SCHED_DEADLINE"},
		{"bad flag", specs.Spec{Process: &specs.Process{Scheduler: &specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{"X"}}}}, "process.scheduler.flags"},
		{"ioprio be", specs.Spec{Process: &specs.Process{IOPriority: &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 4}}}, ""},
		{"ioprio class", specs.Spec{Process: &specs.Process{IOPriority: &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_X"}}}, "process.ioPriority.class"},
		{"ioprio range", specs.Spec{Process: &specs.Process{IOPriority: &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}}}, "process.ioPriority.priority"},
		{"affinity", specs.Spec{Process: &specs.Process{ExecCPUAffinity: &specs.CPUAffinity{Final: "0"}}}, ""},
		{"affinity bad", specs.Spec{Process: &specs.Process{ExecCPUAffinity: &specs.CPUAffinity{Final: "3-1"}}}, "process.execCPUAffinity.final"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(&tt.spec)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v, want an invalid-argument error naming %q", err, tt.err)
			}
		})
	}
}

// TestApply applies attributes on a locked thread of a child process and
// checks what the kernel reports for it.
func TestApply(t *testing.T) {
	if os.Getenv("PROCATTR_CHILD") == "1" {
		runtime.LockOSThread()
		a, err := Parse(&specs.Spec{
			Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32}},
			Process: &specs.Process{
				Scheduler:       &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7},
				IOPriority:      &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 0},
				ExecCPUAffinity: &specs.CPUAffinity{Final: "0"},
			},
		})
		if err != nil {
			os.Exit(2)
		}
		if err := a.Apply(); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		pers, _, _ := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			os.Exit(4)
		}
		prio, _, _ := unix.RawSyscall(unix.SYS_IOPRIO_GET, 1, 0, 0)
		var set unix.CPUSet
		_ = unix.SchedGetaffinity(0, &set)
		if pers&0xff != perLinux32 || attr.Policy != 3 || attr.Nice != 7 || prio>>13 != 3 || set.Count() != 1 || !set.IsSet(0) {
			os.Stderr.WriteString("attributes not applied")
			os.Exit(5)
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestApply$")
	cmd.Env = append(os.Environ(), "PROCATTR_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
}
