// Package procattr owns the kernel attributes of a container's process that
// are neither credentials nor mounts: personality, the scheduler
// (sched_setattr), the I/O priority and the CPU affinity. It validates them
// before a container is made and applies them to the calling thread (the
// init's locked thread, or an exec'd process's). It must not touch users,
// capabilities, namespaces or files.
package procattr

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// Personality domains, from <sys/personality.h>.
const (
	perLinux   = 0x0000
	perLinux32 = 0x0008
)

// Attrs are the parsed attributes; zero values mean "leave as is".
type Attrs struct {
	personality *int
	sched       *unix.SchedAttr
	ioprio      *int
	affinity    *unix.CPUSet
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther:    0,
	specs.SchedFIFO:     1,
	specs.SchedRR:       2,
	specs.SchedBatch:    3,
	specs.SchedIdle:     5,
	specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork:  0x01,
	specs.SchedFlagReclaim:      0x02,
	specs.SchedFlagDLOverrun:    0x04,
	specs.SchedFlagKeepPolicy:   0x08,
	specs.SchedFlagKeepParams:   0x10,
	specs.SchedFlagUtilClampMin: 0x20,
	specs.SchedFlagUtilClampMax: 0x40,
}

var ioprioClasses = map[specs.IOPriorityClass]int{
	specs.IOPRIO_CLASS_RT:   1,
	specs.IOPRIO_CLASS_BE:   2,
	specs.IOPRIO_CLASS_IDLE: 3,
}

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("config.json: %s: %s: %w", field, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
}

// Parse validates the attributes of s (process.scheduler, ioPriority,
// execCPUAffinity, linux.personality).
func Parse(s *specs.Spec) (*Attrs, error) {
	a := &Attrs{}
	if s.Linux != nil && s.Linux.Personality != nil {
		var p int
		switch s.Linux.Personality.Domain {
		case specs.PerLinux:
			p = perLinux
		case specs.PerLinux32:
			p = perLinux32
		default:
			return nil, invalid("linux.personality.domain", "%q is not LINUX or LINUX32", s.Linux.Personality.Domain)
		}
		if len(s.Linux.Personality.Flags) > 0 {
			return nil, invalid("linux.personality.flags", "no flags are defined by the runtime-spec, got %v", s.Linux.Personality.Flags)
		}
		a.personality = &p
	}
	if s.Process == nil {
		return a, nil
	}
	if sc := s.Process.Scheduler; sc != nil {
		pol, ok := schedPolicies[sc.Policy]
		if !ok {
			return nil, invalid("process.scheduler.policy", "%q is not a known policy (SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE)", sc.Policy)
		}
		if sc.Nice < -20 || sc.Nice > 19 {
			return nil, invalid("process.scheduler.nice", "%d is outside -20..19", sc.Nice)
		}
		if (pol == 1 || pol == 2) && (sc.Priority < 1 || sc.Priority > 99) {
			return nil, invalid("process.scheduler.priority", "%d is outside 1..99, which %s needs", sc.Priority, sc.Policy)
		}
		if pol != 1 && pol != 2 && sc.Priority != 0 {
			return nil, invalid("process.scheduler.priority", "must be 0 for %s", sc.Policy)
		}
		if pol == 6 && (sc.Runtime == 0 || sc.Runtime > sc.Deadline || (sc.Period != 0 && sc.Deadline > sc.Period)) {
			return nil, invalid("process.scheduler", "SCHED_DEADLINE needs 0 < runtime <= deadline <= period")
		}
		attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: pol, Nice: sc.Nice, Priority: uint32(sc.Priority),
			Runtime: sc.Runtime, Deadline: sc.Deadline, Period: sc.Period}
		for _, f := range sc.Flags {
			v, ok := schedFlags[f]
			if !ok {
				return nil, invalid("process.scheduler.flags", "unknown flag %q", f)
			}
			attr.Flags |= v
		}
		a.sched = attr
	}
	if io := s.Process.IOPriority; io != nil {
		class, ok := ioprioClasses[io.Class]
		if !ok {
			return nil, invalid("process.ioPriority.class", "%q is not IOPRIO_CLASS_RT, _BE or _IDLE", io.Class)
		}
		if io.Priority < 0 || io.Priority > 7 {
			return nil, invalid("process.ioPriority.priority", "%d is outside 0..7", io.Priority)
		}
		v := class<<13 | io.Priority
		a.ioprio = &v
	}
	if aff := s.Process.ExecCPUAffinity; aff != nil && aff.Final != "" {
		set, err := parseCPUList(aff.Final)
		if err != nil {
			return nil, invalid("process.execCPUAffinity.final", "%v", err)
		}
		a.affinity = set
	}
	return a, nil
}

// parseCPUList reads a list such as "0-3,7".
func parseCPUList(s string) (*unix.CPUSet, error) {
	var set unix.CPUSet
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not a CPU list like 0-3,7", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a CPU list like 0-3,7", s)
			}
		}
		if b >= 1024 {
			return nil, fmt.Errorf("CPU %d is beyond 1023", b)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return &set, nil
}

// Apply sets the attributes on the calling thread, which then execs.
func (a *Attrs) Apply() error {
	if a.personality != nil {
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(*a.personality), 0, 0); e != 0 {
			return fmt.Errorf("set linux.personality: %w", e)
		}
	}
	if a.sched != nil {
		if err := unix.SchedSetAttr(0, a.sched, 0); err != nil {
			return fmt.Errorf("set process.scheduler (policy %d): %w (real-time policies need CAP_SYS_NICE and a cpu.rt_runtime_us budget in the cgroup)", a.sched.Policy, err)
		}
	}
	if a.ioprio != nil {
		const ioprioWhoProcess = 1
		if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(*a.ioprio)); e != 0 {
			return fmt.Errorf("set process.ioPriority: %w", e)
		}
	}
	if a.affinity != nil {
		if err := unix.SchedSetaffinity(0, a.affinity); err != nil {
			return fmt.Errorf("set process.execCPUAffinity: %w", err)
		}
	}
	return nil
}
