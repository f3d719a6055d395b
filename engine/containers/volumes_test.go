package containers_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/engine/volumes"
	"github.com/skiff-containers/skiff/errdefs"
)

// volumeEnv gives e a volume service over its database and a container
// service using it, whose image has the VOLUMEs vols.
func volumeEnv(t *testing.T, e *env, vols ...string) *volumes.Service {
	t.Helper()
	vs, err := volumes.New(volumes.Config{DB: e.cfg.DB, Root: filepath.Join(e.cfg.Root, "volumes"), Logger: e.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Volumes = vs
	if len(vols) > 0 {
		img := e.images.Image
		img.Config.Config.Volumes = map[string]struct{}{}
		for _, v := range vols {
			img.Config.Config.Volumes[v] = struct{}{}
		}
		e.cfg.Images = imageWithVolumes{img}
	}
	e.svc = e.newService()
	return vs
}

type imageWithVolumes struct{ img containers.Image }

func (i imageWithVolumes) ContainerImage(ctx context.Context, ns, ref string) (containers.Image, error) {
	return i.img, nil
}

// runOut runs a container to its exit and returns its code and output.
func (e *env) runOut(mod func(*containers.CreateConfig), args ...string) (int, string) {
	e.t.Helper()
	c := e.create(mod, args...)
	e.start(c.ID)
	code := e.wait(c.ID, "")
	out := strings.Join(e.logs(c.ID, containers.LogsOptions{Tail: -1}), "\n")
	e.remove(c.ID, false)
	return code, out
}

func withMounts(ms ...containers.Mount) func(*containers.CreateConfig) {
	return func(cc *containers.CreateConfig) { cc.Mounts = ms }
}

// checkNoVolumes checks that no volume record or directory is left.
func checkNoVolumes(t *testing.T, e *env, vs *volumes.Service) {
	t.Helper()
	list, err := vs.List(e.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range list {
		t.Errorf("leftover: volume %s", v.Name)
	}
	entries, _ := os.ReadDir(filepath.Join(e.cfg.Root, "volumes", ns))
	for _, en := range entries {
		t.Errorf("leftover: volume directory %s", en.Name())
	}
}

// TestNamedVolumeSurvivesReplacement: data written to a named volume is
// there for the next container; an in-use volume is not removed.
func TestNamedVolumeSurvivesReplacement(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		vs := volumeEnv(t, e)
		m := withMounts(containers.Mount{Type: containers.MountVolume, Source: "data", Target: "/data"})
		if code, out := e.runOut(m, "sh", "-c", "echo kept > /data/f"); code != 0 {
			t.Fatalf("write: exit %d: %s", code, out)
		}
		c := e.create(m, "cat", "/data/f")
		if got := e.inspect(c.ID).Mounts; len(got) != 1 || got[0].Name != "data" || got[0].Source != vs.Path(ns, "data") || got[0].Destination != "/data" {
			t.Errorf("Inspect mounts = %+v", got)
		}
		err := vs.Remove(e.ctx, ns, "data", false)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), c.Name) {
			t.Errorf("remove an in-use volume: %v, want failed precondition naming %s", err, c.Name)
		}
		e.start(c.ID)
		e.wait(c.ID, "")
		if out := e.logs(c.ID, containers.LogsOptions{Tail: -1}); !slices.Equal(out, []string{"stdout: kept"}) {
			t.Errorf("second container read %q, want kept", out)
		}
		// rm -v keeps named volumes.
		if _, err := e.svc.RemoveWithOptions(e.ctx, ns, c.ID, containers.RemoveOptions{Volumes: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := vs.Inspect(e.ctx, ns, "data"); err != nil {
			t.Errorf("rm -v removed a named volume: %v", err)
		}
		if err := vs.Remove(e.ctx, ns, "data", false); err != nil {
			t.Errorf("remove the volume once unused: %v", err)
		}
		e.checkClean()
		checkNoVolumes(t, e, vs)
	})
}

// TestVolumeSeedAndAnonymous: a new named volume takes the image's content
// at its path; an image VOLUME gets a seeded anonymous volume, removed by
// rm -v and by AutoRemove; nocopy keeps a volume empty.
func TestVolumeSeedAndAnonymous(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		vs := volumeEnv(t, e, "/etc")
		// The image's VOLUME /etc is replaced by the named volume.
		code, out := e.runOut(withMounts(containers.Mount{Type: containers.MountVolume, Source: "etc", Target: "/etc"}), "cat", "/etc/passwd")
		if code != 0 || !strings.Contains(out, "root:x:0:0") {
			t.Errorf("seeded named volume: exit %d, %q", code, out)
		}
		if b, err := os.ReadFile(filepath.Join(vs.Path(ns, "etc"), "passwd")); err != nil || !strings.Contains(string(b), "root:") {
			t.Errorf("volume directory lacks the image's passwd: %v", err)
		}
		if list, _ := vs.List(e.ctx, ns); len(list) != 1 {
			t.Errorf("volumes %+v: want only the named one (no anonymous volume for a covered VOLUME)", list)
		}
		if err := vs.Remove(e.ctx, ns, "etc", false); err != nil {
			t.Fatal(err)
		}
		empty := withMounts(containers.Mount{Type: containers.MountVolume, Source: "empty", Target: "/etc", Options: []string{containers.OptNoCopy}})
		if code, out := e.runOut(empty, "ls", "/etc"); code != 0 || strings.Contains(out, "passwd") {
			t.Errorf("nocopy volume: exit %d, %q", code, out)
		}
		vs.Remove(e.ctx, ns, "empty", false)

		// An anonymous volume for the image's VOLUME.
		c := e.create(nil, "sh", "-c", "cat /etc/group && echo x > /etc/new")
		mounts := e.inspect(c.ID).Mounts
		if len(mounts) != 1 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(mounts[0].Name) || mounts[0].Destination != "/etc" {
			t.Fatalf("mounts %+v: want one anonymous volume at /etc", mounts)
		}
		anon := mounts[0].Name
		e.start(c.ID)
		if code := e.wait(c.ID, ""); code != 0 {
			t.Errorf("exit %d: %q", code, e.logs(c.ID, containers.LogsOptions{Tail: -1}))
		}
		if v, err := vs.Inspect(e.ctx, ns, anon); err != nil || !v.Anonymous || !slices.Equal(v.UsedBy, []string{c.ID}) {
			t.Errorf("anonymous volume %+v, %v", v, err)
		}
		if _, err := e.svc.RemoveWithOptions(e.ctx, ns, c.ID, containers.RemoveOptions{Volumes: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := vs.Inspect(e.ctx, ns, anon); !errdefs.IsNotFound(err) {
			t.Errorf("rm -v left the anonymous volume: %v", err)
		}
		// Without -v it stays (docker's), for prune.
		c = e.create(nil, "true")
		anon = e.inspect(c.ID).Mounts[0].Name
		e.remove(c.ID, false)
		if deleted, _, err := vs.Prune(e.ctx, ns, false); err != nil || !slices.Equal(deleted, []string{anon}) {
			t.Errorf("prune = %v, %v; want [%s]", deleted, err, anon)
		}
		// AutoRemove (--rm) takes its anonymous volumes with it.
		c = e.create(func(cc *containers.CreateConfig) { cc.AutoRemove = true }, "true")
		anon = e.inspect(c.ID).Mounts[0].Name
		e.start(c.ID)
		e.wait(c.ID, "removed")
		if _, err := vs.Inspect(e.ctx, ns, anon); !errdefs.IsNotFound(err) {
			t.Errorf("--rm left the anonymous volume: %v", err)
		}
		e.checkClean()
		checkNoVolumes(t, e, vs)
	})
}

// TestBindAndTmpfs: binds read-write and read-only, a tmpfs with its size
// and mode, and failed creates that leave nothing.
func TestBindAndTmpfs(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		vs := volumeEnv(t, e)
		host := t.TempDir()
		os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644)
		rw := containers.Mount{Type: containers.MountBind, Source: host, Target: "/h"}
		if code, out := e.runOut(withMounts(rw), "sh", "-c", "cat /h/in && echo out > /h/out"); code != 0 || out != "stdout: from host" {
			t.Errorf("rw bind: exit %d, %q", code, out)
		}
		if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "out\n" {
			t.Errorf("rw bind: host sees %q", b)
		}
		ro := rw
		ro.ReadOnly = true
		if code, _ := e.runOut(withMounts(ro), "sh", "-c", "echo x > /h/ro"); code == 0 {
			t.Errorf("ro bind: write succeeded")
		}
		if _, err := os.Stat(filepath.Join(host, "ro")); err == nil {
			t.Errorf("ro bind: file written on the host")
		}
		tmpfs := containers.Mount{Type: containers.MountTmpfs, Target: "/t", Options: []string{"size=2m", "mode=1770"}}
		code, out := e.runOut(withMounts(tmpfs), "sh", "-c", "grep ' /t ' /proc/mounts; stat -c %a /t")
		if code != 0 || !strings.Contains(out, "tmpfs /t tmpfs rw,nosuid,nodev,noexec") || !strings.Contains(out, "size=2048k") || !strings.Contains(out, "mode=1770") || !strings.HasSuffix(out, "1770") {
			t.Errorf("tmpfs: exit %d, %q", code, out)
		}

		// -v makes a missing host directory (and a failed create removes it).
		made := filepath.Join(host, "a", "b")
		mk := containers.Mount{Type: containers.MountBind, Source: made, Target: "/m", Options: []string{containers.OptCreateHostPath}}
		if code, out := e.runOut(withMounts(mk), "ls", "/m"); code != 0 {
			t.Errorf("-v with a missing host dir: exit %d %q", code, out)
		}
		if fi, err := os.Stat(made); err != nil || !fi.IsDir() {
			t.Errorf("-v did not make %s: %v", made, err)
		}

		// --mount refuses a missing source; nothing of the create stays:
		// not the anonymous volume nor the -v directory made before it.
		missing := filepath.Join(host, "nope")
		_, _, err := e.svc.Create(e.ctx, ns, containers.CreateConfig{Image: "busybox", Mounts: []containers.Mount{
			{Type: containers.MountVolume, Target: "/anon"},
			{Type: containers.MountBind, Source: filepath.Join(host, "new", "dir"), Target: "/n", Options: []string{containers.OptCreateHostPath}},
			{Type: containers.MountBind, Source: missing, Target: "/x"},
		}})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "bind source path does not exist: "+missing) {
			t.Errorf("missing bind source: %v", err)
		}
		if _, err := os.Stat(filepath.Join(host, "new")); !os.IsNotExist(err) {
			t.Errorf("failed create left the host directory it made: %v", err)
		}
		e.checkClean()
		checkNoVolumes(t, e, vs)
	})
}
