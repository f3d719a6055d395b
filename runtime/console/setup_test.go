package console

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupChild is the stand-in for a container's init: in its own mount
// namespace it mounts a devpts instance in a fake rootfs, calls Setup with
// the console socket on fd 3, and prints what it sees of its terminal on
// stdout (the pty by then). Errors go to fd 4.
func setupChild() int {
	runtime.LockOSThread()
	report := os.NewFile(4, "report")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(report, format+"\n", a...)
		return 1
	}
	root := os.Getenv("ROOT")
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fail("make / private: %v", err)
	}
	if os.Getenv("DEVTMPFS") == "1" {
		// As a container's /dev is: a tmpfs of its own, here mounted in
		// its user namespace.
		dev := filepath.Join(root, "dev")
		if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=755"); err != nil {
			return fail("mount tmpfs on /dev: %v", err)
		}
		if err := os.Mkdir(filepath.Join(dev, "pts"), 0o755); err != nil {
			return fail("%v", err)
		}
		if err := os.Symlink("pts/ptmx", filepath.Join(dev, "ptmx")); err != nil {
			return fail("%v", err)
		}
	}
	if os.Getenv("DEVPTS") == "1" {
		if err := unix.Mount("devpts", filepath.Join(root, "dev/pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
			"newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
			return fail("mount devpts: %v", err)
		}
	}
	c := Config{Root: root}
	if h, w, ok := strings.Cut(os.Getenv("SIZE"), "x"); ok {
		hh, _ := strconv.Atoi(h)
		ww, _ := strconv.Atoi(w)
		c.Size = &specs.Box{Height: uint(hh), Width: uint(ww)}
	}
	uid, _ := strconv.Atoi(os.Getenv("UID"))
	c.UID = uint32(uid)
	if err := Setup(os.NewFile(3, "console-socket"), c); err != nil {
		return fail("%v", err)
	}
	// fd 3 must be closed by Setup.
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil {
		return fail("Setup left the console socket open")
	}

	var st [3]unix.Stat_t
	for fd := 0; fd < 3; fd++ {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		fmt.Printf("isatty%d=%v\n", fd, err == nil)
		if err := unix.Fstat(fd, &st[fd]); err != nil {
			return fail("fstat %d: %v", fd, err)
		}
	}
	fmt.Printf("same=%v\n", st[0].Rdev == st[1].Rdev && st[1].Rdev == st[2].Rdev)
	sid, _ := unix.Getsid(0)
	fmt.Printf("leader=%v\n", sid == unix.Getpid())
	ttySid, err := unix.IoctlGetInt(0, unix.TIOCGSID)
	fmt.Printf("ttysid=%v\n", err == nil && ttySid == sid)
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	fmt.Printf("foreground=%v\n", err == nil && pgrp == unix.Getpgrp())
	stat, _ := os.ReadFile("/proc/self/stat")
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	ttyNr, _ := strconv.ParseUint(fields[4], 10, 64)
	maj, min := uint64(unix.Major(st[0].Rdev)), uint64(unix.Minor(st[0].Rdev))
	fmt.Printf("ctty=%v\n", ttyNr == (min&0xff)|(maj<<8)|((min&^0xff)<<12))
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return fail("TIOCGWINSZ: %v", err)
	}
	fmt.Printf("size=%dx%d\n", ws.Row, ws.Col)
	fmt.Printf("uid=%d\n", st[0].Uid)
	name, _ := os.Readlink("/proc/self/fd/0")
	fmt.Printf("slave=%s\n", strings.TrimPrefix(name, root))
	var cons unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "dev/console"), &cons); err != nil {
		return fail("stat /dev/console: %v", err)
	}
	fmt.Printf("console=%v\n", cons.Rdev == st[0].Rdev && cons.Mode&unix.S_IFMT == unix.S_IFCHR)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		if len(f) > 8 && f[4] == filepath.Join(root, "dev/console") {
			sep := 6
			for f[sep] != "-" {
				sep++
			}
			fmt.Printf("consolemount=%s %s\n", f[sep+1], f[3])
		}
	}
	fmt.Println("ready=1")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return fail("read stdin: %v", err)
	}
	fmt.Printf("got=%s", line)
	return 0
}

type setupCase struct {
	name    string
	size    string // "HxW" or ""
	uid     int
	setsid  bool // start the child as a session leader already
	userns  bool // in a user namespace, with /dev a tmpfs of its own
	devpts  bool
	prepare func(t *testing.T, root string)
}

// runSetup starts the child for tc and returns the master it sent, the
// child, and where its errors go.
func runSetup(t *testing.T, tc setupCase) (*os.File, *exec.Cmd, *collector, error) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev/pts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("pts/ptmx", filepath.Join(root, "dev/ptmx")); err != nil {
		t.Fatal(err)
	}
	if tc.prepare != nil {
		tc.prepare(t, root)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent, child := os.NewFile(uintptr(pair[0]), "parent"), os.NewFile(uintptr(pair[1]), "child")
	t.Cleanup(func() { parent.Close() })
	reportR, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	exe := os.Args[0]
	if tc.userns {
		// The namespace's root is nobody to the host: it needs a way to
		// the rootfs and to a copy of the test binary.
		for _, d := range []string{root, filepath.Dir(root)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		exe = filepath.Join(filepath.Dir(root), "console.test")
		if err := os.WriteFile(exe, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=setup", "ROOT="+root, "SIZE="+tc.size,
		"UID="+strconv.Itoa(tc.uid), "DEVPTS="+map[bool]string{true: "1"}[tc.devpts],
		"DEVTMPFS="+map[bool]string{true: "1"}[tc.userns])
	cmd.ExtraFiles = []*os.File{child, reportW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Setsid: tc.setsid}
	if tc.userns {
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		// Root of the namespace, with its full capabilities there.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	reportW.Close()
	report := collect(reportR)
	t.Cleanup(func() { reportR.Close() })
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	master, err := ReceiveMaster(parent)
	if err != nil {
		cmd.Wait()
		<-report.done
		return nil, cmd, report, fmt.Errorf("%w; child said %q, stderr %q", err, report.String(), stderr.String())
	}
	t.Cleanup(func() { master.Close() })
	return master, cmd, report, nil
}

func TestSetup(t *testing.T) {
	requireRoot(t)
	cases := []setupCase{
		{name: "sized", size: "30x100", devpts: true},
		{name: "unsized non-root user", uid: 1234, devpts: true},
		{name: "already a session leader", size: "24x80", setsid: true, devpts: true},
		{name: "one dimension only leaves it unsized", size: "0x100", devpts: true},
		{name: "user namespace", size: "25x90", uid: 1000, userns: true, devpts: true},
		{name: "existing device node at /dev/console", size: "10x20", devpts: true, prepare: func(t *testing.T, root string) {
			// The host's /dev/null numbers: Setup must mount over it
			// without opening it.
			if err := unix.Mknod(filepath.Join(root, "dev/console"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			master, cmd, report, err := runSetup(t, tc)
			if err != nil {
				t.Fatal(err)
			}
			if master.Name() != "/dev/ptmx" {
				t.Errorf("master name = %q, want /dev/ptmx as runc sends", master.Name())
			}
			out := collect(master)
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(out.String(), "ready=1") {
				if time.Now().After(deadline) || cmd.ProcessState != nil {
					t.Fatalf("child not ready; it printed %q and reported %q", out.String(), report.String())
				}
				if len(out.done) > 0 {
					cmd.Wait()
					t.Fatalf("child ended early; it printed %q and reported %q", out.String(), report.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := master.Write([]byte("ping\n")); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-out.done:
				if !errors.Is(err, unix.EIO) {
					t.Errorf("reading the master ended with %v, want EIO once the child is gone", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("child did not finish; output so far %q", out.String())
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v; it said %q", err, report.String())
			}
			got := map[string]string{}
			for _, l := range strings.Split(strings.ReplaceAll(out.String(), "\r", ""), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok {
					got[k] = v
				}
			}
			wantSize := "0x0"
			if tc.size != "" && !strings.HasPrefix(tc.size, "0x") {
				wantSize = tc.size
			}
			want := map[string]string{
				"isatty0": "true", "isatty1": "true", "isatty2": "true", "same": "true",
				"leader": "true", "ttysid": "true", "foreground": "true", "ctty": "true",
				"size": wantSize, "uid": strconv.Itoa(tc.uid), "console": "true",
				"got": "ping",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all output %q)", k, got[k], v, out.String())
				}
			}
			// runc's /dev/console: a bind of the slave, "/N" of the
			// container's devpts.
			if !strings.HasPrefix(got["slave"], "/dev/pts/") {
				t.Errorf("slave = %q, want /dev/pts/N of the container's devpts", got["slave"])
			}
			if wantMount := "devpts /" + strings.TrimPrefix(got["slave"], "/dev/pts/"); got["consolemount"] != wantMount {
				t.Errorf("/dev/console mount = %q, want %q", got["consolemount"], wantMount)
			}
		})
	}
}

func TestSetupErrors(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		setupCase
		want string
	}{
		{setupCase{name: "no devpts"}, "needs a devpts mount at /dev/pts"},
		{setupCase{name: "console is a directory", devpts: true, prepare: func(t *testing.T, root string) {
			if err := os.Mkdir(filepath.Join(root, "dev/console"), 0o755); err != nil {
				t.Fatal(err)
			}
		}}, "/dev/console in the container is a directory"},
		{setupCase{name: "console is a dangling symlink", devpts: true, prepare: func(t *testing.T, root string) {
			if err := os.Symlink("/nonexistent/console", filepath.Join(root, "dev/console")); err != nil {
				t.Fatal(err)
			}
		}}, "create /dev/console"},
		{setupCase{name: "absurd size", size: "70000x80", devpts: true}, "at most 65535"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, cmd, report, err := runSetup(t, tc.setupCase)
			if err == nil {
				t.Fatal("Setup succeeded, want an error")
			}
			if !strings.Contains(report.String(), tc.want) {
				t.Errorf("child said %q, want it to contain %q", report.String(), tc.want)
			}
			if !strings.Contains(err.Error(), "closed before the container's init sent it") {
				t.Errorf("ReceiveMaster error = %v", err)
			}
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Errorf("child exit = %v, want 1", cmd.ProcessState)
			}
		})
	}
}
