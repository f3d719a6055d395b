package idmap

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// treeSource makes a directory owned by 1000:1000 holding f (1000:1000) and
// sub, a tmpfs mounted in the test's namespace until the test ends.
func treeSource(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{src, filepath.Join(src, "f")} {
		if err := os.Chown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mountFS(t, sub, "tmpfs")
	return src
}

func mountFS(t *testing.T, dir, fstype string) {
	t.Helper()
	if err := unix.Mount(fstype, dir, fstype, 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", fstype, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// containerMountNS starts a process in a new user namespace (root = host
// 100000) and a mount namespace of its own, as a container's init is, and
// returns the path of that mount namespace; the process is killed when the
// test ends.
func containerMountNS(t *testing.T) string {
	t.Helper()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS, UidMappings: m, GidMappings: m}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	path := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/mnt"
	self, _ := os.Readlink("/proc/self/ns/mnt")
	for i := 0; i < 200; i++ { // until the child runs in its namespaces
		if l, err := os.Readlink(path); err == nil && l != self {
			return path
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the holder never entered a new mount namespace")
	return ""
}

func TestOpenTrees(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { assertNoChildren(t) }) // runs last: after the holder is killed
	src := treeSource(t)
	ramfs := t.TempDir()
	mountFS(t, ramfs, "ramfs")
	ctrMNS := containerMountNS(t) // after the mounts: it has copies of them
	bundle := filepath.Dir(src)
	disk1000 := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 100000, Size: 1}}
	tests := []struct {
		name    string
		mntns   string
		mount   specs.Mount
		wantUID uint32 // of the tree's root, as the host sees it through the mount
		class   error
		substr  string
	}{
		{name: "own namespace", mount: specs.Mount{Source: src, Options: []string{"bind"}}, wantUID: 100000},
		{name: "relative source", mount: specs.Mount{Source: filepath.Base(src), Options: []string{"bind"}}, wantUID: 100000},
		{name: "container namespace rbind", mntns: ctrMNS, mount: specs.Mount{Source: src, Options: []string{"rbind", "ridmap"}}, wantUID: 100000},
		{name: "container namespace plain file", mntns: ctrMNS, mount: specs.Mount{Source: filepath.Join(src, "f"), Options: []string{"bind"}}, wantUID: 100000},
		{name: "container namespace bind over locked submounts", mntns: ctrMNS, mount: specs.Mount{Source: src, Options: []string{"bind"}},
			class: errdefs.ErrInvalidArgument, substr: `use "rbind"`},
		{name: "missing source", mount: specs.Mount{Source: "/nonexistent-idmap-source", Options: []string{"bind"}},
			class: errdefs.ErrNotFound, substr: "does not exist"},
		{name: "ramfs", mount: specs.Mount{Source: ramfs, Options: []string{"bind"}},
			class: errdefs.ErrInvalidArgument, substr: "its filesystem (ramfs) does not support ID-mapped mounts"},
		{name: "no such namespace", mntns: "/nonexistent/ns/mnt", mount: specs.Mount{Source: src, Options: []string{"bind"}},
			substr: "open the container's mount namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.mount
			m.Destination, m.UIDMappings, m.GIDMappings = "/mnt", disk1000, disk1000
			s := &specs.Spec{Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}, m}}
			userns, err := ForMounts(s)
			if err != nil {
				t.Fatal(err)
			}
			defer CloseAll(userns)
			trees, err := OpenTrees(tt.mntns, bundle, s, userns)
			if tt.substr != "" {
				if err == nil {
					CloseAll(trees)
					t.Fatal("no error")
				}
				if (tt.class != nil && !errors.Is(err, tt.class)) || !strings.Contains(err.Error(), tt.substr) {
					t.Fatalf("error %q: want %v mentioning %q", err, tt.class, tt.substr)
				}
				if tt.mntns == "" && !strings.Contains(err.Error(), "mounts[1]") {
					t.Errorf("error %q does not name mounts[1]", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer CloseAll(trees)
			tree := trees[1]
			if len(trees) != 1 || tree == nil {
				t.Fatalf("trees %v: want one, for mounts[1]", trees)
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(tree.Fd()), &st); err != nil || st.Uid != tt.wantUID || st.Gid != tt.wantUID {
				t.Errorf("tree root owned by %d:%d (%v), want %d through the mapping", st.Uid, st.Gid, err, tt.wantUID)
			}
			var stx unix.Statx_t
			if err := unix.Statx(int(tree.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_TYPE, &stx); err != nil || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
				t.Errorf("the tree is not the root of a mount (%v)", err)
			}
			if flags, err := unix.FcntlInt(tree.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
				t.Errorf("fd flags %#x, %v: want close-on-exec", flags, err)
			}
		})
	}
}
