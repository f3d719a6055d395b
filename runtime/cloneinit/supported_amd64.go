package cloneinit

// Supported reports whether this architecture has the clone trampoline.
const Supported = true

func rawClone(flags, stack uintptr, c *childData) (pid, errno uintptr)

// sigExitPC is the address of sigExit (clone_amd64.s).
var sigExitPC uintptr
