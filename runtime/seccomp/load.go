package seccomp

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// bpfMaxInsns is the kernel's limit on the length of a classic BPF program.
const bpfMaxInsns = 4096

// Classic BPF opcodes used by the ENOSYS stub.
const (
	bpfLdAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgtK   = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	bpfJsetK  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfJa     = unix.BPF_JMP | unix.BPF_JA
	bpfRetK   = unix.BPF_RET | unix.BPF_K
)

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
)

// x32SyscallBit marks x32 system calls on AUDIT_ARCH_X86_64.
const x32SyscallBit = 0x40000000

// Load builds the filter described by cfg and installs it on the calling
// thread with seccomp(2); with SECCOMP_FILTER_FLAG_TSYNC in cfg.Flags, on
// every thread of the process. The caller must run on a locked OS thread and
// either have set no_new_privs or hold CAP_SYS_ADMIN; Load never sets
// no_new_privs itself. It is meant to be the last step before execve: after
// it returns, every system call of this thread, the Go runtime's included,
// goes through the filter.
//
// If a rule uses SCMP_ACT_NOTIFY, Load returns the listener fd (close-on-exec)
// for the caller to hand to cfg.ListenerPath (see SendNotifyFd); otherwise it
// returns -1. A nil cfg, or one with neither defaultAction nor syscalls,
// loads nothing and returns -1 and nil, as runc does.
func Load(cfg *specs.LinuxSeccomp) (notifyFd int, err error) {
	f, err := Compile(cfg)
	if err != nil {
		return -1, err
	}
	return f.Load()
}

// Filter is a compiled filter, ready to be installed. Compiling needs
// memory (libseccomp) that a container's rlimits may no longer allow, so a
// runtime compiles first and installs last.
type Filter struct {
	prog *program // nil: seccomp is off
}

// Compile builds the filter of cfg without installing it. A nil cfg, or
// one with neither defaultAction nor syscalls, gives a Filter that installs
// nothing.
func Compile(cfg *specs.LinuxSeccomp) (*Filter, error) {
	if disabled(cfg) {
		return &Filter{}, nil
	}
	prog, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	return &Filter{prog: prog}, nil
}

// Load installs the filter on the calling thread, as the package-level Load
// does.
func (f *Filter) Load() (notifyFd int, err error) {
	if f == nil || f.prog == nil {
		return -1, nil
	}
	return install(f.prog)
}

// Program returns the compiled filter for a caller that installs it with
// its own seccomp(2) call (runtime/cloneinit): the instructions, the
// SECCOMP_FILTER_FLAG_* flags, and whether it makes a notify listener. No
// instructions: seccomp is off.
func (f *Filter) Program() (insns []unix.SockFilter, flags uintptr, notify bool) {
	if f == nil || f.prog == nil {
		return nil, 0, false
	}
	return f.prog.insns, f.prog.flags, f.prog.notify
}

// install hands prog to seccomp(SECCOMP_SET_MODE_FILTER).
func install(prog *program) (int, error) {
	fprog := unix.SockFprog{Len: uint16(len(prog.insns)), Filter: &prog.insns[0]}
	r1, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, prog.flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		hint := "the caller needs no_new_privs or CAP_SYS_ADMIN"
		switch errno {
		case unix.EINVAL:
			hint = "this kernel may not support one of the requested filter flags"
		case unix.ESRCH:
			hint = "another thread of the process could not be synchronized (SECCOMP_FILTER_FLAG_TSYNC)"
		case unix.EBUSY:
			hint = "a seccomp notify listener is already installed on this thread"
		}
		return -1, fmt.Errorf("seccomp: load filter (%d instructions, flags %#x): %w (%s)", len(prog.insns), prog.flags, errno, hint)
	}
	if prog.notify {
		return int(r1), nil
	}
	if prog.flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 && r1 != 0 {
		return -1, fmt.Errorf("seccomp: load filter with SECCOMP_FILTER_FLAG_TSYNC: thread %d could not be synchronized", r1)
	}
	return -1, nil
}

// exportBPF returns libseccomp's program for filter.
func exportBPF(filter *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	// libseccomp 2.5 can only export to a file descriptor.
	fd, err := unix.MemfdCreate("skiff-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp: export filter: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "skiff-seccomp")
	defer f.Close()
	if err := filter.ExportBPF(f); err != nil {
		return nil, fmt.Errorf("seccomp: export filter as BPF: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seccomp: export filter: %w", err)
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("seccomp: export filter: %w", err)
	}
	const insnSize = int(unsafe.Sizeof(unix.SockFilter{}))
	if len(raw) == 0 || len(raw)%insnSize != 0 {
		return nil, fmt.Errorf("seccomp: export filter: libseccomp wrote %d bytes, not a whole number of %d-byte instructions", len(raw), insnSize)
	}
	insns := make([]unix.SockFilter, len(raw)/insnSize)
	for i := range insns {
		b := raw[i*insnSize:]
		// seccomp_export_bpf writes in host byte order.
		insns[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:2]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:8]),
		}
	}
	return insns, nil
}

// isAllowLike reports whether an action lets the system call run, in which
// case runc adds no ENOSYS stub (TRACE counts: a tracer handles new calls).
func isAllowLike(a libseccomp.ScmpAction) bool {
	switch baseAction(a) {
	case libseccomp.ActAllow, libseccomp.ActLog, libseccomp.ActTrace:
		return true
	}
	return false
}

// baseAction strips the errno that SetReturnCode keeps in the upper bits.
func baseAction(a libseccomp.ScmpAction) libseccomp.ScmpAction { return a & 0xffff }

// auditArch is the set of highest known syscall numbers for one
// AUDIT_ARCH_* value; x86_64 has two ABIs (amd64 and x32) under one value.
type auditArch struct {
	audit   uint32
	max     uint32 // highest syscall of the main ABI, 0 if none
	maxX32  uint32 // highest x32 syscall (with x32SyscallBit), 0 if none
	hasX32  bool   // SCMP_ARCH_X32 is listed
	hasMain bool   // the main ABI is listed
}

// enosysStub returns the BPF prepended to libseccomp's program so that
// system calls newer than any the profile names return ENOSYS rather than
// the default action, as runc does. It returns nil when the default action
// lets calls through or already returns ENOSYS.
func enosysStub(cfg *specs.LinuxSeccomp, defAct libseccomp.ScmpAction) ([]unix.SockFilter, error) {
	if isAllowLike(defAct) {
		return nil, nil
	}
	if baseAction(defAct) == libseccomp.ActErrno && defAct.GetReturnCode() == int16(unix.ENOSYS) {
		return nil, nil
	}
	byAudit := map[uint32]*auditArch{}
	for _, a := range cfg.Architectures {
		info, _ := lookupArch(a) // checked by compile
		aa := byAudit[info.audit]
		if aa == nil {
			aa = &auditArch{audit: info.audit}
			byAudit[info.audit] = aa
		}
		isX32 := info.scmp == libseccomp.ArchX32
		if isX32 {
			aa.hasX32 = true
		} else {
			aa.hasMain = true
		}
		for _, sc := range cfg.Syscalls {
			for _, name := range sc.Names {
				nr, err := libseccomp.GetSyscallFromNameByArch(name, info.scmp)
				if err != nil || nr < 0 {
					continue // unknown, or a pseudo-syscall not on this arch
				}
				if isX32 {
					aa.maxX32 = max(aa.maxX32, uint32(nr))
				} else {
					aa.max = max(aa.max, uint32(nr))
				}
			}
		}
	}
	audits := make([]uint32, 0, len(byAudit))
	for a := range byAudit {
		audits = append(audits, a)
	}
	sort.Slice(audits, func(i, j int) bool { return audits[i] < audits[j] })

	var as assembler
	enosys, filter := as.newLabel(), as.newLabel()
	as.stmt(bpfLdAbsW, offArch)
	for _, audit := range audits {
		aa := byAudit[audit]
		if aa.max == 0 && aa.maxX32 == 0 {
			continue // no syscall of this arch in the profile: no stub
		}
		next := as.newLabel()
		as.jump(bpfJeqK, audit, noLabel, next)
		as.stmt(bpfLdAbsW, offNr)
		if audit == unix.AUDIT_ARCH_S390 || audit == unix.AUDIT_ARCH_S390X {
			// Unknown syscalls are multiplexed through syscall 0 there.
			as.jump(bpfJeqK, 0, enosys, noLabel)
		}
		if audit == unix.AUDIT_ARCH_X86_64 {
			x32 := as.newLabel()
			as.jump(bpfJsetK, x32SyscallBit, x32, noLabel)
			as.limit(aa.hasMain, aa.max, enosys, filter)
			as.place(x32)
			as.limit(aa.hasX32, aa.maxX32, enosys, filter)
		} else {
			as.limit(true, aa.max, enosys, filter)
		}
		as.place(next)
	}
	as.ja(filter)
	as.place(enosys)
	as.stmt(bpfRetK, unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS))
	as.place(filter)
	return as.link()
}

// noLabel means "the next instruction" for a conditional jump target.
const noLabel = -1

// asmInsn is an instruction whose jump targets may still be labels.
type asmInsn struct {
	ins      unix.SockFilter
	jt, jf   int // labels for conditional jumps, noLabel = fall through
	jaTarget int // label for BPF_JA, noLabel if not a JA
}

// assembler builds a small classic BPF program with forward jumps to labels.
type assembler struct {
	insns  []asmInsn
	labels []int // label -> instruction index, -1 until placed
}

func (a *assembler) newLabel() int {
	a.labels = append(a.labels, -1)
	return len(a.labels) - 1
}

func (a *assembler) place(l int) { a.labels[l] = len(a.insns) }

func (a *assembler) stmt(code uint16, k uint32) {
	a.insns = append(a.insns, asmInsn{ins: unix.SockFilter{Code: code, K: k}, jt: noLabel, jf: noLabel, jaTarget: noLabel})
}

func (a *assembler) jump(code uint16, k uint32, jt, jf int) {
	a.insns = append(a.insns, asmInsn{ins: unix.SockFilter{Code: code, K: k}, jt: jt, jf: jf, jaTarget: noLabel})
}

func (a *assembler) ja(target int) {
	a.insns = append(a.insns, asmInsn{ins: unix.SockFilter{Code: bpfJa}, jt: noLabel, jf: noLabel, jaTarget: target})
}

// limit emits "syscall number > max: ENOSYS, else the filter" when the ABI
// is listed, or a plain jump into the filter when it is not.
func (a *assembler) limit(listed bool, max uint32, enosys, filter int) {
	if !listed || max == 0 {
		a.ja(filter)
		return
	}
	a.jump(bpfJgtK, max, enosys, filter)
}

// link resolves the labels into relative offsets.
func (a *assembler) link() ([]unix.SockFilter, error) {
	out := make([]unix.SockFilter, len(a.insns))
	rel := func(i, l int) (int, error) {
		if l == noLabel {
			return 0, nil
		}
		t := a.labels[l]
		if t < 0 {
			return 0, fmt.Errorf("seccomp: internal error: ENOSYS stub label %d not placed", l)
		}
		if t <= i {
			return 0, fmt.Errorf("seccomp: internal error: ENOSYS stub jumps backwards")
		}
		return t - i - 1, nil
	}
	for i, in := range a.insns {
		out[i] = in.ins
		if in.jaTarget != noLabel {
			off, err := rel(i, in.jaTarget)
			if err != nil {
				return nil, err
			}
			out[i].K = uint32(off)
			continue
		}
		if out[i].Code&0x07 != unix.BPF_JMP {
			continue
		}
		jt, err := rel(i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := rel(i, in.jf)
		if err != nil {
			return nil, err
		}
		if jt > 255 || jf > 255 {
			return nil, fmt.Errorf("seccomp: ENOSYS stub too long for a conditional jump (%d, %d): list fewer architectures", jt, jf)
		}
		out[i].Jt, out[i].Jf = uint8(jt), uint8(jf)
	}
	return out, nil
}
