// Package seccomp owns turning the linux.seccomp section of an OCI runtime
// spec into a BPF filter and installing it on the calling thread. It must not
// touch mounts, users or capabilities: the caller sets no_new_privs (or keeps
// CAP_SYS_ADMIN) and decides when to call Load.
//
// The filter is built with libseccomp and then loaded by this package with
// seccomp(2) itself (not seccomp_load), so that the flags are exactly the ones
// the spec asks for: libseccomp-golang turns on SECCOMP_FILTER_FLAG_TSYNC for
// every filter, which would apply a container's filter to every thread of the
// Go process, and it would set no_new_privs behind the caller's back.
//
// Behaviour compared with runc 1.1 (the oracle), rule by rule:
//
//   - SCMP_ACT_KILL means SCMP_ACT_KILL_THREAD, as in runc and libseccomp.
//   - errnoRet and defaultErrnoRet default to EPERM for SCMP_ACT_ERRNO and
//     SCMP_ACT_TRACE. runc silently ignores an errnoRet given with another
//     action; the runtime-spec says the runtime MUST fail, so Validate refuses.
//   - A rule whose action (with its errno) equals the default action is
//     skipped, as runc does, since libseccomp refuses such rules.
//   - Syscall names: runc skips a name libseccomp cannot resolve with a debug
//     log. Here a name that is not a Linux system call at all (a typo, a made
//     up name) is refused with ErrInvalidArgument. A name that Linux has but
//     the linked libseccomp is too old to know (Debian 12's 2.5.4 does not
//     know mseal, listmount, lsm_*, *xattrat, uretprobe, all of which are in
//     Docker's default profile) is skipped exactly as runc skips it, because
//     refusing it would make profiles that runc and containerd accept fail
//     here. The list of Linux names is generated from golang.org/x/sys/unix
//     (kernelnames.go). A name that exists in libseccomp but not on any
//     listed architecture (for example _llseek on x86_64 alone) is accepted
//     and libseccomp leaves it out of the filter, as in runc.
//   - Several args with distinct indexes are ANDed in one rule. If any index
//     appears more than once, runc (and so this package) falls back to
//     adding every condition as a rule of its own, which ORs them: libseccomp
//     cannot AND two comparisons of the same argument in one rule.
//   - Flags: runc 1.1.5 refuses every flag ("seccomp flags are not yet
//     supported by runc"); later runc versions and this package accept all
//     four flags of the runtime-spec. SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
//     only means something with a notify listener and is dropped when no rule
//     uses SCMP_ACT_NOTIFY (the kernel would reject it).
//   - As in runc, syscalls that are newer than every syscall the profile
//     names (per listed architecture) get ENOSYS instead of the default
//     action, unless the default action is ALLOW, LOG or TRACE, or the
//     default errno is ENOSYS already. This lets libc fall back from, say,
//     clone3 or faccessat2 on an old profile. Like runc, the stub is only
//     generated for the architectures listed in the profile.
//   - SCMP_ACT_NOTIFY is refused as the default action and for write(2), as
//     in runc, and requires listenerPath.
package seccomp

//go:generate go run gen_kernelnames.go

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// maxErrno is the largest errno the kernel passes through (MAX_ERRNO); larger
// SCMP_ACT_ERRNO data is clamped by the kernel, so it is refused here.
const maxErrno = 4095

// syscallMaxArgs is the number of arguments a Linux system call can have.
const syscallMaxArgs = 6

// parseAction converts an OCI action name, with its optional errno, to a
// libseccomp action. field names the place in the spec for error messages.
func parseAction(name specs.LinuxSeccompAction, errnoRet *uint, field string) (libseccomp.ScmpAction, error) {
	var act libseccomp.ScmpAction
	switch name {
	case specs.ActKill, specs.ActKillThread:
		act = libseccomp.ActKillThread
	case specs.ActKillProcess:
		act = libseccomp.ActKillProcess
	case specs.ActTrap:
		act = libseccomp.ActTrap
	case specs.ActErrno:
		act = libseccomp.ActErrno
	case specs.ActTrace:
		act = libseccomp.ActTrace
	case specs.ActAllow:
		act = libseccomp.ActAllow
	case specs.ActLog:
		act = libseccomp.ActLog
	case specs.ActNotify:
		act = libseccomp.ActNotify
	case "":
		return libseccomp.ActInvalid, fmt.Errorf("seccomp: %s is empty: set one of %s: %w",
			field, strings.Join(knownActions(), ", "), errdefs.ErrInvalidArgument)
	default:
		return libseccomp.ActInvalid, fmt.Errorf("seccomp: %s %q is not a seccomp action: use one of %s: %w",
			field, name, strings.Join(knownActions(), ", "), errdefs.ErrInvalidArgument)
	}
	if act == libseccomp.ActErrno || act == libseccomp.ActTrace {
		code := uint(unix.EPERM)
		if errnoRet != nil {
			code = *errnoRet
		}
		if code > maxErrno {
			return libseccomp.ActInvalid, fmt.Errorf("seccomp: %s %s: errno %d is out of range: use 0..%d: %w",
				field, name, code, maxErrno, errdefs.ErrInvalidArgument)
		}
		return act.SetReturnCode(int16(code)), nil
	}
	if errnoRet != nil {
		return libseccomp.ActInvalid, fmt.Errorf("seccomp: %s %s does not take an errno (errnoRet %d): errnoRet is only valid with %s or %s; remove it: %w",
			field, name, *errnoRet, specs.ActErrno, specs.ActTrace, errdefs.ErrInvalidArgument)
	}
	return act, nil
}

// knownActions lists the action names of the runtime-spec.
func knownActions() []string {
	return []string{
		string(specs.ActKill), string(specs.ActKillProcess), string(specs.ActKillThread),
		string(specs.ActTrap), string(specs.ActErrno), string(specs.ActTrace),
		string(specs.ActAllow), string(specs.ActLog), string(specs.ActNotify),
	}
}

// parseOperator converts an OCI comparison operator to libseccomp's.
func parseOperator(op specs.LinuxSeccompOperator) (libseccomp.ScmpCompareOp, bool) {
	switch op {
	case specs.OpNotEqual:
		return libseccomp.CompareNotEqual, true
	case specs.OpLessThan:
		return libseccomp.CompareLess, true
	case specs.OpLessEqual:
		return libseccomp.CompareLessOrEqual, true
	case specs.OpEqualTo:
		return libseccomp.CompareEqual, true
	case specs.OpGreaterEqual:
		return libseccomp.CompareGreaterEqual, true
	case specs.OpGreaterThan:
		return libseccomp.CompareGreater, true
	case specs.OpMaskedEqual:
		return libseccomp.CompareMaskedEqual, true
	}
	return libseccomp.CompareInvalid, false
}

// archInfo describes one architecture of the runtime-spec: libseccomp's
// token for it and the AUDIT_ARCH_* value the kernel puts in seccomp_data.
type archInfo struct {
	scmp  libseccomp.ScmpArch
	audit uint32
}

// lookupArch maps an OCI architecture name to libseccomp and the kernel.
func lookupArch(a specs.Arch) (archInfo, bool) {
	switch a {
	case specs.ArchX86:
		return archInfo{libseccomp.ArchX86, unix.AUDIT_ARCH_I386}, true
	case specs.ArchX86_64:
		return archInfo{libseccomp.ArchAMD64, unix.AUDIT_ARCH_X86_64}, true
	case specs.ArchX32:
		return archInfo{libseccomp.ArchX32, unix.AUDIT_ARCH_X86_64}, true
	case specs.ArchARM:
		return archInfo{libseccomp.ArchARM, unix.AUDIT_ARCH_ARM}, true
	case specs.ArchAARCH64:
		return archInfo{libseccomp.ArchARM64, unix.AUDIT_ARCH_AARCH64}, true
	case specs.ArchMIPS:
		return archInfo{libseccomp.ArchMIPS, unix.AUDIT_ARCH_MIPS}, true
	case specs.ArchMIPS64:
		return archInfo{libseccomp.ArchMIPS64, unix.AUDIT_ARCH_MIPS64}, true
	case specs.ArchMIPS64N32:
		return archInfo{libseccomp.ArchMIPS64N32, unix.AUDIT_ARCH_MIPS64N32}, true
	case specs.ArchMIPSEL:
		return archInfo{libseccomp.ArchMIPSEL, unix.AUDIT_ARCH_MIPSEL}, true
	case specs.ArchMIPSEL64:
		return archInfo{libseccomp.ArchMIPSEL64, unix.AUDIT_ARCH_MIPSEL64}, true
	case specs.ArchMIPSEL64N32:
		return archInfo{libseccomp.ArchMIPSEL64N32, unix.AUDIT_ARCH_MIPSEL64N32}, true
	case specs.ArchPPC:
		return archInfo{libseccomp.ArchPPC, unix.AUDIT_ARCH_PPC}, true
	case specs.ArchPPC64:
		return archInfo{libseccomp.ArchPPC64, unix.AUDIT_ARCH_PPC64}, true
	case specs.ArchPPC64LE:
		return archInfo{libseccomp.ArchPPC64LE, unix.AUDIT_ARCH_PPC64LE}, true
	case specs.ArchS390:
		return archInfo{libseccomp.ArchS390, unix.AUDIT_ARCH_S390}, true
	case specs.ArchS390X:
		return archInfo{libseccomp.ArchS390X, unix.AUDIT_ARCH_S390X}, true
	case specs.ArchPARISC:
		return archInfo{libseccomp.ArchPARISC, unix.AUDIT_ARCH_PARISC}, true
	case specs.ArchPARISC64:
		return archInfo{libseccomp.ArchPARISC64, unix.AUDIT_ARCH_PARISC64}, true
	case specs.ArchRISCV64:
		return archInfo{libseccomp.ArchRISCV64, unix.AUDIT_ARCH_RISCV64}, true
	case specs.ArchLOONGARCH64:
		return archInfo{libseccomp.ArchLOONGARCH64, unix.AUDIT_ARCH_LOONGARCH64}, true
	case specs.ArchM68K:
		return archInfo{libseccomp.ArchM68K, unix.AUDIT_ARCH_M68K}, true
	case specs.ArchSH:
		return archInfo{libseccomp.ArchSH, unix.AUDIT_ARCH_SHEL}, true
	case specs.ArchSHEB:
		return archInfo{libseccomp.ArchSHEB, unix.AUDIT_ARCH_SH}, true
	}
	return archInfo{}, false
}

// parseFlag maps a runtime-spec seccomp flag to its seccomp(2) bit.
func parseFlag(f specs.LinuxSeccompFlag) (uintptr, bool) {
	switch f {
	case "SECCOMP_FILTER_FLAG_TSYNC":
		return unix.SECCOMP_FILTER_FLAG_TSYNC, true
	case specs.LinuxSeccompFlagLog:
		return unix.SECCOMP_FILTER_FLAG_LOG, true
	case specs.LinuxSeccompFlagSpecAllow:
		return unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, true
	case specs.LinuxSeccompFlagWaitKillableRecv:
		return unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, true
	}
	return 0, false
}

// isKernelSyscallName reports whether name is a Linux system call on some
// architecture, whether or not the linked libseccomp knows it.
func isKernelSyscallName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "\n") &&
		strings.Contains(kernelSyscallNames, "\n"+name+"\n")
}

// disabled reports whether cfg asks for no filter at all: runc treats a
// section with neither defaultAction nor syscalls as "seccomp disabled".
func disabled(cfg *specs.LinuxSeccomp) bool {
	return cfg == nil || (cfg.DefaultAction == "" && len(cfg.Syscalls) == 0)
}

// Validate checks the whole linux.seccomp section before any container is
// made: actions, errno values, architectures, flags, syscall names,
// argument indexes and operators, and the listener settings. It builds the
// filter with libseccomp (without loading it), so anything Load would refuse
// for the content of cfg is refused here. Errors wrap
// errdefs.ErrInvalidArgument. A nil cfg, or one with neither defaultAction
// nor syscalls, means no filter and is valid.
func Validate(cfg *specs.LinuxSeccomp) error {
	if disabled(cfg) {
		return nil
	}
	_, err := compile(cfg)
	return err
}

// usesNotify reports whether any rule of cfg has the SCMP_ACT_NOTIFY action.
func usesNotify(cfg *specs.LinuxSeccomp) bool {
	for _, sc := range cfg.Syscalls {
		if sc.Action == specs.ActNotify {
			return true
		}
	}
	return false
}

// program is a compiled filter ready for seccomp(2).
type program struct {
	insns  []unix.SockFilter
	flags  uintptr
	notify bool
}

// compile checks cfg and turns it into a BPF program and seccomp(2) flags.
func compile(cfg *specs.LinuxSeccomp) (*program, error) {
	defAct, err := parseAction(cfg.DefaultAction, cfg.DefaultErrnoRet, "defaultAction")
	if err != nil {
		return nil, err
	}
	if defAct == libseccomp.ActNotify {
		return nil, fmt.Errorf("seccomp: defaultAction %s is not allowed: the runtime must still write to its sync pipe after loading the filter; use it only in syscalls[].action: %w",
			specs.ActNotify, errdefs.ErrInvalidArgument)
	}

	var archs []archInfo
	for i, a := range cfg.Architectures {
		info, ok := lookupArch(a)
		if !ok {
			return nil, fmt.Errorf("seccomp: architectures[%d] %q is not a seccomp architecture: use SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_AARCH64, ... (runtime-spec config-linux.md): %w",
				i, a, errdefs.ErrInvalidArgument)
		}
		archs = append(archs, info)
	}

	notify := usesNotify(cfg)
	var flags uintptr
	for i, f := range cfg.Flags {
		bit, ok := parseFlag(f)
		if !ok {
			return nil, fmt.Errorf("seccomp: flags[%d] %q is not a seccomp filter flag: use SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW or SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: %w",
				i, f, errdefs.ErrInvalidArgument)
		}
		flags |= bit
	}
	if notify {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			// TSYNC reports a failing thread by returning its id, which
			// cannot be told from the listener fd; ask for ESRCH instead.
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
		}
		if cfg.ListenerPath == "" {
			return nil, fmt.Errorf("seccomp: a rule uses %s but listenerPath is empty: set listenerPath to the seccomp agent's unix socket: %w",
				specs.ActNotify, errdefs.ErrInvalidArgument)
		}
	} else {
		flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	}
	if cfg.ListenerMetadata != "" && cfg.ListenerPath == "" {
		return nil, fmt.Errorf("seccomp: listenerMetadata is set without listenerPath: set listenerPath or remove listenerMetadata: %w",
			errdefs.ErrInvalidArgument)
	}

	filter, err := libseccomp.NewFilter(defAct)
	if err != nil {
		return nil, fmt.Errorf("seccomp: create filter with defaultAction %s: %w", cfg.DefaultAction, err)
	}
	defer filter.Release()
	// This package loads the program itself; these attributes only matter
	// to seccomp_load but are cleared so an exported filter is honest.
	if err := filter.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("seccomp: clear the filter's no_new_privs attribute: %w", err)
	}
	for i, a := range archs {
		if err := filter.AddArch(a.scmp); err != nil {
			hint := "remove it"
			if errors.Is(err, unix.EDOM) {
				hint = "it has another byte order than the native architecture and libseccomp cannot mix them in one filter; remove it"
			}
			return nil, fmt.Errorf("seccomp: architectures[%d] %s cannot be added to the filter: %v: %s: %w",
				i, cfg.Architectures[i], err, hint, errdefs.ErrInvalidArgument)
		}
	}

	for i, sc := range cfg.Syscalls {
		if err := addRules(filter, defAct, i, &sc); err != nil {
			return nil, err
		}
	}

	insns, err := exportBPF(filter)
	if err != nil {
		return nil, err
	}
	stub, err := enosysStub(cfg, defAct)
	if err != nil {
		return nil, err
	}
	insns = append(stub, insns...)
	if len(insns) > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp: the filter has %d BPF instructions, more than the kernel's limit of %d: use fewer rules or arguments: %w",
			len(insns), bpfMaxInsns, errdefs.ErrInvalidArgument)
	}
	return &program{insns: insns, flags: flags, notify: notify}, nil
}

// addRules adds the rules of cfg.Syscalls[idx] to filter.
func addRules(filter *libseccomp.ScmpFilter, defAct libseccomp.ScmpAction, idx int, sc *specs.LinuxSyscall) error {
	field := fmt.Sprintf("syscalls[%d]", idx)
	if len(sc.Names) == 0 {
		return fmt.Errorf("seccomp: %s has no names: list at least one syscall name: %w", field, errdefs.ErrInvalidArgument)
	}
	act, err := parseAction(sc.Action, sc.ErrnoRet, field+".action")
	if err != nil {
		return err
	}

	var conds []libseccomp.ScmpCondition
	var perIndex [syscallMaxArgs]int
	sameIndex := false
	for j, a := range sc.Args {
		op, ok := parseOperator(a.Op)
		if !ok {
			return fmt.Errorf("seccomp: %s.args[%d].op %q is not a seccomp operator: use SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT or SCMP_CMP_MASKED_EQ: %w",
				field, j, a.Op, errdefs.ErrInvalidArgument)
		}
		if a.Index >= syscallMaxArgs {
			return fmt.Errorf("seccomp: %s.args[%d].index %d is out of range: system calls have arguments 0..%d: %w",
				field, j, a.Index, syscallMaxArgs-1, errdefs.ErrInvalidArgument)
		}
		// For SCMP_CMP_MASKED_EQ, value is the mask and valueTwo the datum.
		c, err := libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		if err != nil {
			return fmt.Errorf("seccomp: %s.args[%d]: %v: %w", field, j, err, errdefs.ErrInvalidArgument)
		}
		perIndex[a.Index]++
		if perIndex[a.Index] > 1 {
			sameIndex = true
		}
		conds = append(conds, c)
	}

	for k, name := range sc.Names {
		nfield := fmt.Sprintf("%s.names[%d]", field, k)
		if act == libseccomp.ActNotify && name == "write" {
			return fmt.Errorf("seccomp: %s: %s cannot be used for write: the runtime writes to its sync pipe after loading the filter and would hang; use another action for write: %w",
				nfield, specs.ActNotify, errdefs.ErrInvalidArgument)
		}
		nr, err := libseccomp.GetSyscallFromName(name)
		if err != nil {
			if isKernelSyscallName(name) {
				// Newer than the linked libseccomp: skipped, as runc does.
				continue
			}
			maj, mnr, mic := libseccomp.GetLibraryVersion()
			return fmt.Errorf("seccomp: %s %q is not a Linux system call known to libseccomp %d.%d.%d or to Linux: check the spelling or remove it: %w",
				nfield, name, maj, mnr, mic, errdefs.ErrInvalidArgument)
		}
		if act == defAct {
			// Redundant with the default action; libseccomp refuses it.
			continue
		}
		switch {
		case len(conds) == 0:
			err = filter.AddRule(nr, act)
		case sameIndex:
			// runc's (and docker's) semantics: each condition its own
			// rule, so conditions on the same argument are ORed.
			for _, c := range conds {
				if err = filter.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
					break
				}
			}
		default:
			err = filter.AddRuleConditional(nr, act, conds)
		}
		if err != nil {
			return fmt.Errorf("seccomp: %s %q: add rule %s: %v: %w", nfield, name, sc.Action, err, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
