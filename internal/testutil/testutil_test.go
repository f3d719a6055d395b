package testutil

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestDefaultSpecMatchesRuncSpec(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("runc", "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want specs.Spec
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	want.Process.Terminal = false
	want.Process.Args = []string{"echo", "hi"}
	got := DefaultSpec("echo", "hi")
	if !reflect.DeepEqual(got, &want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(&want, "", " ")
		t.Errorf("DefaultSpec differs from runc spec:\ngot  %s\nwant %s", g, w)
	}
}

func TestBusyboxBundle(t *testing.T) {
	b, spec := BusyboxBundle(t, "true")
	if !reflect.DeepEqual(spec.Process.Args, []string{"true"}) || spec.Process.Terminal {
		t.Errorf("spec process = %+v", spec.Process)
	}
	root := filepath.Join(b, "rootfs")
	checks := []struct {
		path string
		mode os.FileMode
	}{
		{"bin/busybox", 0o755},
		{"tmp", os.ModeDir | os.ModeSticky | 0o777},
		{"proc", os.ModeDir | 0o555},
		{"root", os.ModeDir | 0o700},
		{"etc/passwd", 0o644},
		{"etc/group", 0o644},
	}
	for _, c := range checks {
		fi, err := os.Lstat(filepath.Join(root, c.path))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	for _, applet := range []string{"sh", "id", "cat", "ls", "sleep", "touch"} {
		if target, err := os.Readlink(filepath.Join(root, "bin", applet)); err != nil || target != "busybox" {
			t.Errorf("bin/%s -> %q, %v; want busybox", applet, target, err)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	for _, want := range []string{"root:x:0:0:", "app:x:1000:1000:", "nobody:x:65534:65534:"} {
		if !strings.Contains(string(passwd), want) {
			t.Errorf("/etc/passwd lacks %q", want)
		}
	}
	var got specs.Spec
	data, _ := os.ReadFile(filepath.Join(b, "config.json"))
	if err := json.Unmarshal(data, &got); err != nil || !reflect.DeepEqual(&got, spec) {
		t.Errorf("config.json does not hold the returned spec (%v)", err)
	}
	spec.Hostname = "changed"
	WriteSpec(t, b, spec)
	data, _ = os.ReadFile(filepath.Join(b, "config.json"))
	if !strings.Contains(string(data), `"changed"`) {
		t.Error("WriteSpec did not rewrite config.json")
	}
}

func TestParseMountInfo(t *testing.T) {
	in := `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
36 25 254:1 /tmp/a\040b /mnt/x\040y ro,relatime master:1 shared:2 - ext4 /dev/vda1 rw,errors=remount-ro
40 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	got, err := ParseMountInfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []MountInfo{
		{ID: 22, Parent: 1, MajMin: "0:21", Root: "/", MountPoint: "/proc", Options: "rw,nosuid,nodev,noexec,relatime",
			Optional: []string{"shared:12"}, FSType: "proc", Source: "proc", SuperOptions: "rw"},
		{ID: 36, Parent: 25, MajMin: "254:1", Root: "/tmp/a b", MountPoint: "/mnt/x y", Options: "ro,relatime",
			Optional: []string{"master:1", "shared:2"}, FSType: "ext4", Source: "/dev/vda1", SuperOptions: "rw,errors=remount-ro"},
		{ID: 40, Parent: 25, MajMin: "0:30", Root: "/", MountPoint: "/sys/fs/cgroup/unified", Options: "rw,relatime",
			Optional: []string{}, FSType: "cgroup2", Source: "cgroup2", SuperOptions: "rw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := ParseMountInfo(strings.NewReader("1 2 3\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

// TestFindLeftovers plants each kind of leftover and checks that it is
// found and then removed.
func TestFindLeftovers(t *testing.T) {
	dir := t.TempDir()
	root := t.TempDir()
	name := ContainerID(t)
	l := Leftovers{StateRoot: root, Dirs: []string{dir}, CgroupNames: []string{name}, IDs: []string{name}}
	if got := FindLeftovers(l); len(got) != 0 {
		t.Fatalf("leftovers before planting: %q", got)
	}

	if err := os.Mkdir(filepath.Join(root, name), 0o700); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	cg := "/sys/fs/cgroup/pids/" + name
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	// Runtimes put a container with no cgroupsPath below their own cgroup,
	// which need not be the root (here, the memory hierarchy).
	own := ownCgroups()["/sys/fs/cgroup/memory"]
	if own == "" {
		t.Fatal("no memory cgroup in /proc/self/cgroup")
	}
	cgRel := filepath.Join("/sys/fs/cgroup/memory", own, name)
	if err := os.Mkdir(cgRel, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "60")
	sleeper.Dir = dir
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	// A process in another mount namespace holding a bind mount of dir.
	nsHolder := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount --bind "+dir+" /mnt && exec sleep 60")
	nsHolder.Dir = "/"
	if err := nsHolder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleeper.Process.Kill()
		nsHolder.Process.Kill()
		sleeper.Wait()
		nsHolder.Wait()
	}()
	time.Sleep(300 * time.Millisecond)

	got := strings.Join(FindLeftovers(l), "\n")
	for _, want := range []string{
		"state " + filepath.Join(root, name),
		"mount " + resolve(mnt),
		"cgroup " + cg,
		"cgroup " + cgRel,
		"has cwd " + resolve(dir),
		"has a mount namespace where /mnt is mounted",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("leftovers lack %q; got:\n%s", want, got)
		}
	}

	RemoveLeftovers(l)
	sleeper.Wait()
	nsHolder.Wait()
	if got := FindLeftovers(l); len(got) != 0 {
		t.Errorf("leftovers after RemoveLeftovers: %q", got)
	}
}

func TestRuntimeLifecycleRunc(t *testing.T) {
	bundle, _ := BusyboxBundle(t, "sleep", "30")
	rt := NewRuntime(t, "runc", "runc")
	id := ContainerID(t)
	CheckNoLeftovers(t, Leftovers{StateRoot: rt.Root, Dirs: []string{bundle}, CgroupNames: []string{id}, Runtime: rt, IDs: []string{id}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := rt.Create(ctx, id, bundle); err != nil {
		t.Fatal(err)
	}
	st, err := rt.State(ctx, id)
	if err != nil || st.Status != "created" || st.Pid <= 0 || st.ID != id {
		t.Fatalf("state after create = %+v, %v", st, err)
	}
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.WaitStatus(ctx, id, "running", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	list, err := rt.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("list = %+v, %v", list, err)
	}
	if err := rt.Kill(ctx, id, "KILL"); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.WaitStatus(ctx, id, "stopped", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := rt.Delete(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := rt.Run(ctx, "state", id)
	if code != 1 || stderr == "" {
		t.Errorf("state of deleted container: exit %d, stderr %q", code, stderr)
	}
}

func TestContainerID(t *testing.T) {
	a, b := ContainerID(t), ContainerID(t)
	if a == b || len(a) > 64 || !strings.HasPrefix(a, "sk-") {
		t.Errorf("ContainerID gave %q and %q", a, b)
	}
}
