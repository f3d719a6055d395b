#include "go_asm.h"
#include "textflag.h"

// func rawClone(flags, stack uintptr, c *childData) (pid, errno uintptr)
//
// clone(2) with the child on its own stack (stack is its top, 16-byte
// aligned): the child calls childMain(c) there and never returns here. The
// child's pidfd goes to c.pidfd (CLONE_PIDFD).
TEXT ·rawClone(SB),NOSPLIT,$0-40
	MOVQ	flags+0(FP), DI
	MOVQ	stack+8(FP), SI
	MOVQ	c+16(FP), R12
	LEAQ	childData_pidfd(R12), DX	// parent_tid: where CLONE_PIDFD stores the pidfd
	XORQ	R10, R10			// child_tid
	XORQ	R8, R8				// tls
	MOVQ	$56, AX				// SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$0, pid+24(FP)
	NEGQ	AX
	MOVQ	AX, errno+32(FP)
	RET
ok:
	MOVQ	AX, pid+24(FP)
	MOVQ	$0, errno+32(FP)
	RET
child:
	// On the new stack. R12 survives the syscall.
	SUBQ	$16, SP
	MOVQ	R12, 0(SP)
	CALL	·childMain(SB)
	MOVL	$1, DI
	MOVL	$231, AX			// SYS_exit_group, should childMain return
	SYSCALL
	INT	$3

// sigExit is the clone's handler, until its execve, for the signals on
// which a Go program exits: it exits with status 2, as the Go init does
// (pid 1 of a pid namespace ignores signals it has no handler for).
TEXT ·sigExit(SB),NOSPLIT|NOFRAME,$0
	MOVL	$2, DI
	MOVL	$231, AX			// SYS_exit_group
	SYSCALL
	INT	$3

DATA ·sigExitPC+0(SB)/8, $·sigExit(SB)
GLOBL ·sigExitPC(SB), RODATA, $8
