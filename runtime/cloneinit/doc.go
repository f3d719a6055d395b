// Package cloneinit owns the fast start of a container's init: the runtime
// clones it straight into its new namespaces sharing the runtime's memory
// (CLONE_VM, as vfork does, but without suspending the runtime), and the
// clone runs a fixed sequence of raw system calls prepared for it in a Plan,
// ending in execve(2) of the user program. No second Go runtime starts, and
// nothing is copied or faulted in for the clone. The runtime builds the
// container's root filesystem meanwhile, from one of its own threads that has
// joined the clone's namespaces (the caller does that; see
// runtime/container).
//
// It owns the Plan, the clone and the clone's code. It must not decide which
// containers may start this way (the caller does), and the clone's code must
// not allocate, grow its stack, store pointers or call into the Go runtime: it
// runs beside the runtime's scheduler and garbage collector, which know
// nothing of it, on a stack of its own.
package cloneinit
