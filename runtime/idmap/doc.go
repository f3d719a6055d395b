// Package idmap owns making user-namespace fds that carry a given ID
// mapping, for ID-mapped mounts, and (OpenTrees) detached ID-mapped clones
// of mount sources; it never attaches a mount anywhere.
//
// The runtime (the parent, in the host's namespaces) calls UsernsFD or
// ForMounts before it starts the container's init, and passes the fds down;
// rootfs uses them in mount_setattr(2) with MOUNT_ATTR_IDMAP. A container
// with a user namespace of its own cannot ID-map the host's mounts itself:
// the runtime then calls OpenTrees once the init's namespaces exist, and
// passes the detached, already ID-mapped trees down instead.
//
// How the user namespace is made: a Go process is multi-threaded and cannot
// unshare(CLONE_NEWUSER) itself, so UsernsFD starts a throwaway child with
// CLONE_NEWUSER and the mappings written by os/exec, as runc 1.2 does. The
// child is started under PTRACE_TRACEME with /proc/self/exe as its program:
// the kernel stops it with SIGTRAP as soon as execve(2) succeeds, before a
// single instruction of the new program runs, so the binary's main needs no
// hook and no helper program (sh, sleep) has to exist. UsernsFD opens
// /proc/<pid>/ns/user, then kills and reaps the child: the namespace lives on
// only through the returned fd.
package idmap
