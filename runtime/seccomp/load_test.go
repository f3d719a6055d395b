package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// childEnv switches the test binary into the child that loads a filter.
const childEnv = "SKIFF_SECCOMP_TEST_CHILD"

// childReq tells the child what to load and which system calls to try.
type childReq struct {
	Config      *specs.LinuxSeccomp
	NNP         bool    // set no_new_privs before Load
	OtherThread bool    // run the probes on another OS thread
	Notify      bool    // send the listener fd to Config.ListenerPath
	Probes      []probe // tried in order after Load
}

// probe is one system call the child makes after loading the filter.
type probe struct {
	Kind string     // "mkdir" (mkdirat Path), "getcwd", or "raw" (Nr with Args)
	Path string     // for mkdir
	Nr   uintptr    // for raw
	Args [6]uintptr // for raw
}

// childResult is what the child reports: the errno of every probe (0 on
// success) and the listener fd Load returned.
type childResult struct {
	Errnos   []syscall.Errno
	NotifyFd int
}

func TestMain(m *testing.M) {
	if req := os.Getenv(childEnv); req != "" {
		if err := runChild(req); err != nil {
			fmt.Fprintln(os.Stderr, "seccomp test child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(reqJSON string) error {
	var req childReq
	if err := json.Unmarshal([]byte(reqJSON), &req); err != nil {
		return err
	}
	runtime.LockOSThread()
	if req.NNP {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	} else {
		// Load without no_new_privs needs CAP_SYS_ADMIN: check the
		// filter really went in without the bit.
		if v, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); v != 0 {
			return fmt.Errorf("no_new_privs is set before Load")
		}
	}
	fd, err := Load(req.Config)
	if err != nil {
		return err
	}
	if !req.NNP {
		if v, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); v != 0 {
			return fmt.Errorf("Load set no_new_privs")
		}
	}
	if req.Notify {
		state, err := NotifyState(req.Config, os.Getpid(), specs.State{Version: specs.Version, ID: "test", Status: specs.StateCreating, Pid: os.Getpid()})
		if err != nil {
			return err
		}
		if err := SendNotifyFd(req.Config.ListenerPath, fd, state); err != nil {
			return err
		}
	}
	res := childResult{NotifyFd: fd}
	run := func() {
		for _, p := range req.Probes {
			res.Errnos = append(res.Errnos, p.do())
		}
	}
	if req.OtherThread {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			run()
			close(done)
		}()
		<-done
	} else {
		run()
	}
	return json.NewEncoder(os.Stdout).Encode(&res)
}

func (p probe) do() syscall.Errno {
	switch p.Kind {
	case "mkdir":
		path, err := unix.BytePtrFromString(p.Path)
		if err != nil {
			return unix.EINVAL
		}
		fdcwd := unix.AT_FDCWD
		_, _, e := unix.Syscall(unix.SYS_MKDIRAT, uintptr(fdcwd), uintptr(unsafe.Pointer(path)), 0o755)
		return e
	case "getcwd":
		buf := make([]byte, 4096)
		_, _, e := unix.Syscall(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
		return e
	case "raw":
		_, _, e := unix.Syscall6(p.Nr, p.Args[0], p.Args[1], p.Args[2], p.Args[3], p.Args[4], p.Args[5])
		return e
	}
	return unix.EINVAL
}

// runInChild runs req in a re-executed test binary and returns its result.
func runInChild(t *testing.T, req childReq) childResult {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("these tests load seccomp filters without no_new_privs and need root (CI runs as root)")
	}
	b, err := json.Marshal(&req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstderr: %s", err, stderr.String())
	}
	var res childResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("child output %q: %v\nstderr: %s", stdout.String(), err, stderr.String())
	}
	if len(res.Errnos) != len(req.Probes) {
		t.Fatalf("child ran %d probes, want %d", len(res.Errnos), len(req.Probes))
	}
	return res
}

func checkErrnos(t *testing.T, what string, got []syscall.Errno, want ...syscall.Errno) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: errnos %v (%d), want %v (%d)", what, got, got, want, want)
	}
}

func raw(nr uintptr, args ...uintptr) probe {
	p := probe{Kind: "raw", Nr: nr}
	copy(p.Args[:], args)
	return p
}

func TestLoadErrnoRet(t *testing.T) {
	dir := t.TempDir()
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EROFS))},
		{Names: []string{"getcwd"}, Action: specs.ActErrno}, // EPERM by default
	}}
	for _, nnp := range []bool{false, true} {
		res := runInChild(t, childReq{Config: cfg, NNP: nnp, Probes: []probe{
			{Kind: "mkdir", Path: filepath.Join(dir, "x")}, {Kind: "getcwd"}, raw(unix.SYS_GETPID),
		}})
		checkErrnos(t, fmt.Sprintf("nnp=%v", nnp), res.Errnos, unix.EROFS, unix.EPERM, 0)
		if res.NotifyFd != -1 {
			t.Errorf("NotifyFd %d without notify rules, want -1", res.NotifyFd)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("mkdir went through the filter: %v", err)
	}
	// The same probes without a filter succeed, so the errnos above come
	// from the filter.
	res := runInChild(t, childReq{Config: nil, Probes: []probe{{Kind: "mkdir", Path: filepath.Join(dir, "y")}, {Kind: "getcwd"}}})
	checkErrnos(t, "no filter", res.Errnos, 0, 0)
}

// dockerAllowList is the unconditional allow list of Docker's profile,
// generous enough for the Go runtime to keep working under a deny default.
func dockerAllowList(t *testing.T, except ...string) []string {
	t.Helper()
	p := DefaultProfile()
	var names []string
	for _, n := range p.Syscalls[0].Names {
		if !slices.Contains(except, n) {
			names = append(names, n)
		}
	}
	if len(names) < 300 {
		t.Fatalf("Docker allow list has %d names, expected the big first rule", len(names))
	}
	return names
}

func TestLoadDefaultErrnoRet(t *testing.T) {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uptr(uint(unix.EXDEV)),
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls:      []specs.LinuxSyscall{{Names: dockerAllowList(t, "getcwd"), Action: specs.ActAllow}}}
	res := runInChild(t, childReq{Config: cfg, Probes: []probe{{Kind: "getcwd"}, raw(unix.SYS_GETPID), raw(1000)}})
	// Syscall 1000 is above every syscall the profile names: the ENOSYS
	// stub answers it, not the default action.
	checkErrnos(t, "defaultErrnoRet EXDEV", res.Errnos, unix.EXDEV, 0, unix.ENOSYS)
}

func TestLoadArgs(t *testing.T) {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		// One index: a plain condition.
		{Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EACCES)),
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo}}},
		// The same index twice: runc ORs the conditions.
		{Names: []string{"setpriority"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.ENOTSUP)),
			Args: []specs.LinuxSeccompArg{{Index: 2, Value: 5, Op: specs.OpEqualTo}, {Index: 2, Value: 6, Op: specs.OpEqualTo}}},
		// Distinct indexes: ANDed. kill(self, 0) is refused, kill(parent, 0) not.
		{Names: []string{"kill"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EDOM)),
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpGreaterThan}, {Index: 1, Value: 0, Op: specs.OpEqualTo}}},
		// MASKED_EQ: value is the mask, valueTwo the datum. getpriority(PRIO_USER, 0) is refused.
		{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.ENOLINK)),
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x2, ValueTwo: 0x2, Op: specs.OpMaskedEqual}}},
	}}
	res := runInChild(t, childReq{Config: cfg, Probes: []probe{
		raw(unix.SYS_PERSONALITY, 0xffffffff),
		raw(unix.SYS_PERSONALITY, 0),
		raw(unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, 0, 5),
		raw(unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, 0, 6),
		raw(unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, 0, 0),
		raw(unix.SYS_KILL, uintptr(os.Getpid()), 0), // pid > 1 and sig 0: refused
		raw(unix.SYS_KILL, 1, 0),                    // pid 1 is not > 1: allowed
	}})
	checkErrnos(t, "args", res.Errnos, unix.EACCES, 0, unix.ENOTSUP, unix.ENOTSUP, 0, unix.EDOM, 0)

	res = runInChild(t, childReq{Config: cfg, Probes: []probe{
		raw(unix.SYS_GETPRIORITY, unix.PRIO_USER, 0),
		raw(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0),
	}})
	checkErrnos(t, "masked_eq", res.Errnos, unix.ENOLINK, 0)
}

func TestLoadDefaultProfile(t *testing.T) {
	unshare := raw(unix.SYS_UNSHARE, unix.CLONE_NEWUTS)
	keyctl := raw(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd) /* KEY_SPEC_SESSION_KEYRING */, 0)
	probes := []probe{raw(unix.SYS_GETPID), unshare, keyctl, raw(unix.SYS_MOUNT), {Kind: "getcwd"}, raw(1000)}

	res := runInChild(t, childReq{Config: DefaultProfile(), NNP: true, Probes: probes})
	// getpid allowed; unshare, keyctl, mount: Docker's defaultErrnoRet
	// (EPERM); an unknown newer syscall: ENOSYS from the stub.
	checkErrnos(t, "docker default caps", res.Errnos, 0, unix.EPERM, unix.EPERM, unix.EPERM, 0, unix.ENOSYS)

	// With CAP_SYS_ADMIN the profile lets unshare through (the child is
	// root, so it succeeds); keyctl stays blocked.
	admin := DefaultProfileWithCaps(append(dockerDefaultCaps(), "CAP_SYS_ADMIN"))
	res = runInChild(t, childReq{Config: admin, Probes: probes[:3]})
	checkErrnos(t, "docker CAP_SYS_ADMIN", res.Errnos, 0, 0, unix.EPERM)
}

func TestLoadOnlyCallingThread(t *testing.T) {
	dir := t.TempDir()
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EROFS))},
	}}
	res := runInChild(t, childReq{Config: cfg, OtherThread: true, Probes: []probe{{Kind: "mkdir", Path: filepath.Join(dir, "a")}}})
	checkErrnos(t, "other thread without TSYNC", res.Errnos, 0)

	cfg.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"}
	res = runInChild(t, childReq{Config: cfg, OtherThread: true, Probes: []probe{{Kind: "mkdir", Path: filepath.Join(dir, "b")}}})
	checkErrnos(t, "other thread with TSYNC", res.Errnos, unix.EROFS)
}

func TestLoadFlagsLogSpecAllow(t *testing.T) {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getcwd"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.ENOKEY))},
			{Names: []string{"getppid"}, Action: specs.ActLog},
		}}
	res := runInChild(t, childReq{Config: cfg, Probes: []probe{{Kind: "getcwd"}, raw(unix.SYS_GETPPID)}})
	checkErrnos(t, "log+spec_allow", res.Errnos, unix.ENOKEY, 0)
}

func TestLoadNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	type agentResult struct {
		state specs.ContainerProcessState
		nr    libseccomp.ScmpSyscall
		err   error
	}
	agent := make(chan agentResult, 1)
	go func() {
		var r agentResult
		defer func() { agent <- r }()
		_ = l.SetDeadline(time.Now().Add(30 * time.Second))
		conn, err := l.AcceptUnix()
		if err != nil {
			r.err = err
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 64<<10), make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			r.err = err
			return
		}
		if err := json.Unmarshal(buf[:n], &r.state); err != nil {
			r.err = fmt.Errorf("state %q: %v", buf[:n], err)
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			r.err = fmt.Errorf("control messages %v: %v", msgs, err)
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			r.err = fmt.Errorf("rights %v: %v", fds, err)
			return
		}
		defer unix.Close(fds[0])
		req, err := libseccomp.NotifReceive(libseccomp.ScmpFd(fds[0]))
		if err != nil {
			r.err = fmt.Errorf("NotifReceive: %v", err)
			return
		}
		r.nr = req.Data.Syscall
		r.err = libseccomp.NotifRespond(libseccomp.ScmpFd(fds[0]), &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EMLINK)}) // libseccomp negates it
	}()

	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: sock, ListenerMetadata: "meta-42",
		Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdirat"}, Action: specs.ActNotify},
			{Names: []string{"getcwd"}, Action: specs.ActErrno},
		}}
	res := runInChild(t, childReq{Config: cfg, Notify: true, Probes: []probe{{Kind: "mkdir", Path: filepath.Join(dir, "n")}, {Kind: "getcwd"}}})
	checkErrnos(t, "notify", res.Errnos, unix.EMLINK, unix.EPERM)
	if res.NotifyFd < 0 {
		t.Errorf("Load returned NotifyFd %d with a notify rule", res.NotifyFd)
	}
	r := <-agent
	if r.err != nil {
		t.Fatalf("agent: %v", r.err)
	}
	if r.nr != libseccomp.ScmpSyscall(unix.SYS_MKDIRAT) {
		t.Errorf("agent saw syscall %d, want mkdirat (%d)", r.nr, unix.SYS_MKDIRAT)
	}
	if !slices.Equal(r.state.Fds, []string{specs.SeccompFdName}) || r.state.Metadata != "meta-42" || r.state.State.ID != "test" || r.state.Pid == 0 {
		t.Errorf("agent got state %+v", r.state)
	}
}

func TestSendNotifyFdErrors(t *testing.T) {
	if err := SendNotifyFd("", 0, []byte(`{}`)); err == nil {
		t.Errorf("empty listenerPath accepted")
	}
	if err := SendNotifyFd("/nonexistent/agent.sock", -1, []byte(`{}`)); err == nil {
		t.Errorf("fd -1 accepted")
	}
	if err := SendNotifyFd("/nonexistent/agent.sock", 0, []byte(`{"fds":["a","b"]}`)); err == nil {
		t.Errorf("state naming two fds accepted")
	}
	if err := SendNotifyFd("/nonexistent/agent.sock", 0, []byte(`{}`)); err == nil {
		t.Errorf("unreachable agent: no error")
	}
}
