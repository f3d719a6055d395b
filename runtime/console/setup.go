package console

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// Config says where and how Setup allocates the container's terminal.
type Config struct {
	// Root is the directory that is, or will be after pivot_root, the
	// container's "/": the rootfs path when Setup runs between
	// rootfs.Prepare and rootfs.Finalize, "/" after the pivot. /dev/ptmx
	// and /dev/console are resolved inside it (symlinks cannot leave it).
	// Empty means "/".
	Root string
	// Size is process.consoleSize; the pty is sized only when both its
	// height and width are non-zero, as runc does.
	Size *specs.Box
	// UID is process.user.uid: the slave's owner becomes it, so that a
	// non-root process can use its terminal. A refusal (the owner or the
	// uid unmapped in a user namespace, a read-only /dev) is ignored.
	UID uint32
	// NoConsoleMount skips the bind over /dev/console: for a process
	// exec'd into a running container, whose /dev/console is the init's.
	NoConsoleMount bool
}

// Setup runs in the container's init, on its locked OS thread, with
// privileges, after the container's /dev/pts is mounted and before the user
// switch. It opens Root/dev/ptmx, unlocks it, opens the slave, sizes it,
// bind-mounts the slave over Root/dev/console, makes the slave the owner's
// (UID), makes the process a session leader (setsid, unless it is one
// already) with the slave as its controlling terminal and as fds 0, 1 and
// 2, and finally sends the master over sock. It closes sock and its own
// copies of the master and of the slave, whether it fails or not.
//
// runc does it after pivot_root and before the read-only remounts and the
// masked paths; with Root set to the rootfs it can run before the pivot
// with the same result, since the bind mount moves with the rootfs.
func Setup(sock *os.File, c Config) error {
	defer sock.Close()
	root := c.Root
	if root == "" {
		root = "/"
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("process.terminal: open the container's root %s: %w", root, err)
	}
	defer unix.Close(rootFD)

	master, slave, err := openPty(rootFD)
	if err != nil {
		return fmt.Errorf("process.terminal: %w", err)
	}
	defer master.Close()
	defer slave.Close()
	mfd, sfd := int(master.Fd()), int(slave.Fd())

	if s := c.Size; s != nil && s.Height != 0 && s.Width != 0 {
		if s.Height > 0xffff || s.Width > 0xffff {
			return fmt.Errorf("%w: process.consoleSize %dx%d: a terminal has at most 65535 rows and columns", errdefs.ErrInvalidArgument, s.Height, s.Width)
		}
		ws := &unix.Winsize{Row: uint16(s.Height), Col: uint16(s.Width)}
		if err := unix.IoctlSetWinsize(mfd, unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("process.consoleSize: set the size of %s to %dx%d: %w", slave.Name(), s.Height, s.Width, err)
		}
	}
	if !c.NoConsoleMount {
		if err := bindConsole(rootFD, sfd); err != nil {
			return fmt.Errorf("process.terminal: bind %s over /dev/console: %w", slave.Name(), err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return fmt.Errorf("process.terminal: stat %s: %w", slave.Name(), err)
	}
	if st.Uid != c.UID {
		err := unix.Fchown(sfd, int(c.UID), int(st.Gid))
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("process.terminal: give %s to process.user.uid %d: %w", slave.Name(), c.UID, err)
		}
	}
	if err := becomeSessionLeader(); err != nil {
		return fmt.Errorf("process.terminal: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(sfd, fd, 0); err != nil {
			return fmt.Errorf("process.terminal: make %s fd %d: %w", slave.Name(), fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("process.terminal: make %s the controlling terminal: %w", slave.Name(), err)
	}
	return SendMaster(sock, master)
}

// openPty opens /dev/ptmx inside the root and returns the unlocked master
// and its slave, both close-on-exec and opened without becoming the
// controlling terminal. The slave comes from the master (TIOCGPTPEER), not
// from a path, so it is the master's peer whatever the container's /dev
// holds.
func openPty(rootFD int) (master, slave *os.File, err error) {
	how := &unix.OpenHow{
		Flags:   unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	mfd, err := unix.Openat2(rootFD, "/dev/ptmx", how)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w: %w (a terminal needs a devpts mount at /dev/pts in the container)", errdefs.ErrNotFound, err)
		}
		return nil, nil, fmt.Errorf("open /dev/ptmx in the container: %w", err)
	}
	master = os.NewFile(uintptr(mfd), MasterName)
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	if _, err := unix.IoctlGetTermios(mfd, unix.TCGETS); err != nil {
		return nil, nil, fmt.Errorf("%w: /dev/ptmx in the container is not a pty multiplexer: %w", errdefs.ErrInvalidArgument, err)
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, nil, fmt.Errorf("unlock the pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		return nil, nil, fmt.Errorf("get the pty number: %w", err)
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return nil, nil, fmt.Errorf("open the slave of the pty /dev/pts/%d: %w", n, errno)
	}
	return master, os.NewFile(r, "/dev/pts/"+strconv.FormatUint(uint64(n), 10)), nil
}

// bindConsole bind-mounts the slave over /dev/console in the root, creating
// an empty file there first if there is nothing.
func bindConsole(rootFD, sfd int) error {
	target, err := openConsoleTarget(rootFD)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	tree, err := unix.OpenTree(sfd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("clone the mount of the slave: %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach it at /dev/console: %w", err)
	}
	return nil
}

// openConsoleTarget returns an O_PATH descriptor of /dev/console inside the
// root, creating it as an empty file, mode 0666 as in runc, if it is
// missing. It never opens the node itself: an existing /dev/console may be a
// device of the host's.
func openConsoleTarget(rootFD int) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(rootFD, "/dev/console", how)
	if err == nil {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("stat /dev/console: %w", err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			unix.Close(fd)
			return -1, fmt.Errorf("%w: /dev/console in the container is a directory; remove it from the image", errdefs.ErrInvalidArgument)
		}
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("open /dev/console: %w", err)
	}
	dir, err := unix.Openat2(rootFD, "/dev", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, fmt.Errorf("open /dev: %w", err)
	}
	defer unix.Close(dir)
	old := unix.Umask(0)
	err = unix.Mknodat(dir, "console", unix.S_IFREG|0o666, 0)
	unix.Umask(old)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("%w: %w (a dangling symlink?)", errdefs.ErrInvalidArgument, err)
		}
		return -1, fmt.Errorf("create /dev/console: %w", err)
	}
	fd, err = unix.Openat2(dir, "console", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return -1, fmt.Errorf("open the new /dev/console: %w", err)
	}
	return fd, nil
}

// becomeSessionLeader starts a new session, which a controlling terminal
// needs, unless the process leads one already.
func becomeSessionLeader() error {
	pid := unix.Getpid()
	if sid, err := unix.Getsid(0); err == nil && sid == pid {
		return nil
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("start a new session (setsid): %w", err)
	}
	return nil
}
