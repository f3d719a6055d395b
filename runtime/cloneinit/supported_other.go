//go:build !amd64

package cloneinit

// Supported reports whether this architecture has the clone trampoline.
const Supported = false

func rawClone(flags, stack uintptr, c *childData) (pid, errno uintptr) {
	return 0, uintptr(38) // ENOSYS
}

var sigExitPC uintptr
