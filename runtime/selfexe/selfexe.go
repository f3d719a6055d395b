// Package selfexe owns the handle through which the runtime re-executes its
// own binary as a container's init. A container can reach that process's
// /proc/<pid>/exe, and, once the runtime exits, reopen it for writing and
// overwrite the host's runtime binary (CVE-2019-5736). The handle is opened
// through a read-only bind mount of the binary that is detached at once: the
// init's exe then lives on a mount that refuses writes (EROFS) and that no
// one can reach to make writable, and no mount is left behind.
//
// It must not copy or modify the binary, and must not leave mounts or files.
package selfexe

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Open returns a read-only, close-on-exec handle to the running binary,
// opened through a detached read-only bind mount. scratchDir is a directory
// on a filesystem the caller may create a file in (the runtime's state
// root); the file made there is removed before Open returns.
func Open(scratchDir string) (*os.File, error) {
	return openReadOnly("/proc/self/exe", scratchDir)
}

// openReadOnly opens path through a detached read-only bind mount.
func openReadOnly(path, scratchDir string) (*os.File, error) {
	tmp, err := os.CreateTemp(scratchDir, ".skiff-runtime-exe-")
	if err != nil {
		return nil, fmt.Errorf("protect the runtime binary: create bind target in %s: %w", scratchDir, err)
	}
	target := tmp.Name()
	tmp.Close()
	defer os.Remove(target)

	if err := unix.Mount(path, target, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("protect the runtime binary: bind it read-only: %w", err)
	}
	mounted := true
	defer func() {
		if mounted {
			_ = unix.Unmount(target, unix.MNT_DETACH)
		}
	}()
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return nil, fmt.Errorf("protect the runtime binary: remount the bind read-only: %w", err)
	}
	f, err := os.OpenFile(target, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("protect the runtime binary: open it: %w", err)
	}
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
		f.Close()
		return nil, fmt.Errorf("protect the runtime binary: detach the bind: %w", err)
	}
	mounted = false
	return f, nil
}
