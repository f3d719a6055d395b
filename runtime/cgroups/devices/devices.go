// Package devices turns an OCI device cgroup list (linux.resources.devices)
// into a BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it to a cgroup v2
// directory: cgroup v2 has no devices.allow/deny files, and a device filter
// program is how the kernel enforces device access there.
//
// Semantics match the v1 controller fed the same list in order: the last
// rule that matches a request (type, major, minor and the access asked for)
// decides; a request that no rule matches is allowed, as in a new v1 cgroup
// that inherits the root's "a *:* rwm". The usual list starts with a deny of
// everything, which makes it an allowlist.
//
// The program is assembled here from a handful of instructions and loaded
// with the bpf(2) system call directly; no BPF library is needed.
package devices

import (
	"encoding/binary"
	"fmt"
	"math"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

// Insn is one eBPF instruction (struct bpf_insn).
type Insn struct {
	Code uint8
	Regs uint8 // dst in the low nibble, src in the high one
	Off  int16
	Imm  int32
}

// Program is a device filter, ready to load.
type Program []Insn

// Bytes encodes p as the kernel expects it (little endian, x86-64 and arm64).
func (p Program) Bytes() []byte {
	b := make([]byte, 8*len(p))
	for i, in := range p {
		b[8*i] = in.Code
		b[8*i+1] = in.Regs
		binary.LittleEndian.PutUint16(b[8*i+2:], uint16(in.Off))
		binary.LittleEndian.PutUint32(b[8*i+4:], uint32(in.Imm))
	}
	return b
}

// Opcodes used (see linux/bpf_common.h, linux/bpf.h).
const (
	opLdxW   = 0x61 // BPF_LDX | BPF_MEM | BPF_W
	opMovImm = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K
	opMovReg = 0xbf // BPF_ALU64 | BPF_MOV | BPF_X
	opAndImm = 0x57 // BPF_ALU64 | BPF_AND | BPF_K
	opRshImm = 0x77 // BPF_ALU64 | BPF_RSH | BPF_K
	opJneImm = 0x55 // BPF_JMP | BPF_JNE | BPF_K
	opExit   = 0x95 // BPF_JMP | BPF_EXIT
)

// Registers and the fields of struct bpf_cgroup_dev_ctx in r1.
const (
	r0, r1, r2, r3, r4, r5, r6 = 0, 1, 2, 3, 4, 5, 6

	// Device types and access bits of access_type (type | access << 16).
	TypeBlock = 1 // BPF_DEVCG_DEV_BLOCK
	TypeChar  = 2 // BPF_DEVCG_DEV_CHAR
	AccMknod  = 1 // BPF_DEVCG_ACC_MKNOD
	AccRead   = 2 // BPF_DEVCG_ACC_READ
	AccWrite  = 4 // BPF_DEVCG_ACC_WRITE
)

func reg(dst, src uint8) uint8 { return dst | src<<4 }

// Compile builds the filter for rules.
func Compile(rules []specs.LinuxDeviceCgroup) (Program, error) {
	p := Program{
		{Code: opLdxW, Regs: reg(r2, r1), Off: 0}, // r2 = access_type
		{Code: opMovReg, Regs: reg(r3, r2)},       // r3 = r2
		{Code: opAndImm, Regs: reg(r3, 0), Imm: 0xffff},
		{Code: opRshImm, Regs: reg(r2, 0), Imm: 16}, // r2 = access
		{Code: opLdxW, Regs: reg(r4, r1), Off: 4},   // r4 = major
		{Code: opLdxW, Regs: reg(r5, r1), Off: 8},   // r5 = minor
	}
	// Last rule first: the first match in the program is the last in the list.
	for i := len(rules) - 1; i >= 0; i-- {
		block, err := ruleBlock(rules[i])
		if err != nil {
			return nil, fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
		p = append(p, block...)
		if len(block) == 2 {
			// It matches everything: earlier rules can never decide, and
			// the verifier refuses unreachable instructions.
			return p, nil
		}
	}
	// No rule matched: allowed, like a fresh v1 cgroup.
	p = append(p, Insn{Code: opMovImm, Regs: reg(r0, 0), Imm: 1}, Insn{Code: opExit})
	return p, nil
}

// ruleBlock returns instructions that exit with the rule's verdict when it
// matches and fall through to the next block otherwise.
func ruleBlock(d specs.LinuxDeviceCgroup) (Program, error) {
	var typ int32
	switch d.Type {
	case "", "a":
	case "b":
		typ = TypeBlock
	case "c":
		typ = TypeChar
	default:
		return nil, fmt.Errorf("device type %q is not a, b or c: %w", d.Type, errdefs.ErrInvalidArgument)
	}
	acc := "rwm"
	if d.Access != "" {
		acc = d.Access
	}
	var bits int32
	for _, c := range acc {
		var b int32
		switch c {
		case 'r':
			b = AccRead
		case 'w':
			b = AccWrite
		case 'm':
			b = AccMknod
		default:
			return nil, fmt.Errorf("device access %q is not a combination of r, w and m: %w", d.Access, errdefs.ErrInvalidArgument)
		}
		if bits&b != 0 {
			return nil, fmt.Errorf("device access %q repeats %q: %w", d.Access, c, errdefs.ErrInvalidArgument)
		}
		bits |= b
	}
	num := func(p *int64, what string) (int32, bool, error) {
		if p == nil || *p == -1 || typ == 0 {
			return 0, false, nil
		}
		if *p < 0 || *p > math.MaxInt32 {
			return 0, false, fmt.Errorf("device %s %d is out of range: %w", what, *p, errdefs.ErrInvalidArgument)
		}
		return int32(*p), true, nil
	}
	maj, hasMaj, err := num(d.Major, "major")
	if err != nil {
		return nil, err
	}
	min, hasMin, err := num(d.Minor, "minor")
	if err != nil {
		return nil, err
	}
	var checks Program // each jumps to the end of the block on mismatch
	if typ != 0 {
		checks = append(checks, Insn{Code: opJneImm, Regs: reg(r3, 0), Imm: typ})
	}
	if bits != AccRead|AccWrite|AccMknod {
		// Asked-for access must be within the rule's: (access & ^bits) == 0.
		checks = append(checks,
			Insn{Code: opMovReg, Regs: reg(r6, r2)},
			Insn{Code: opAndImm, Regs: reg(r6, 0), Imm: ^bits & 7},
			Insn{Code: opJneImm, Regs: reg(r6, 0), Imm: 0})
	}
	if hasMaj {
		checks = append(checks, Insn{Code: opJneImm, Regs: reg(r4, 0), Imm: maj})
	}
	if hasMin {
		checks = append(checks, Insn{Code: opJneImm, Regs: reg(r5, 0), Imm: min})
	}
	verdict := int32(0)
	if d.Allow {
		verdict = 1
	}
	block := append(checks, Insn{Code: opMovImm, Regs: reg(r0, 0), Imm: verdict}, Insn{Code: opExit})
	// Fix the jump offsets: to just past the block.
	for i := range block {
		if block[i].Code == opJneImm {
			block[i].Off = int16(len(block) - i - 1)
		}
	}
	return block, nil
}
