package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/idmap"
)

// idmapSource makes a directory holding root0 (owned by 0:0), u1000 (owned
// by 1000:1000) and sub, a tmpfs mounted on the host (unmounted when the test
// ends) holding f (owned by 0:0).
func idmapSource(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "root0"), "r")
	mustWrite(t, filepath.Join(src, "u1000"), "u")
	if err := os.Chown(filepath.Join(src, "u1000"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the test tmpfs: %v", err)
		}
	})
	mustWrite(t, filepath.Join(sub, "f"), "f")
	return src
}

// idmapFiles opens the user namespaces of spec's ID-mapped mounts (as the
// runtime does) and returns them as the child's extra files and the matching
// Config.IDMapFDs.
func idmapFiles(t *testing.T, spec *specs.Spec) ([]*os.File, map[int]int) {
	t.Helper()
	byMount, err := idmap.ForMounts(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idmap.CloseAll(byMount) })
	var files []*os.File
	fdOf := map[*os.File]int{}
	fds := map[int]int{}
	for i, f := range byMount {
		if _, ok := fdOf[f]; !ok {
			fdOf[f] = 3 + len(files)
			files = append(files, f)
		}
		fds[i] = fdOf[f]
	}
	return files, fds
}

// TestIDMappedMounts: a file owned by ID n on disk shows, through a mount
// ID-mapped with {containerID c, hostID h, size s}, as h+(n-c) when c <= n <
// c+s, else as the overflow ID 65534 (Documentation/filesystems/idmappings.rst:
// the on-disk ID is mapped up through the mount's user namespace).
func TestIDMappedMounts(t *testing.T) {
	requireRoot(t)
	src := idmapSource(t)
	own := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	ctr := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 2000, Size: 1}, {ContainerID: 1000, HostID: 3000, Size: 1}}
	spec := &specs.Spec{
		Root:  &specs.Root{Path: "rootfs"},
		Linux: &specs.Linux{UIDMappings: ctr, GIDMappings: ctr},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			// The mount's own mappings, no option needed.
			{Destination: "/own", Source: src, Options: []string{"bind"}, UIDMappings: own, GIDMappings: own},
			// rbind+idmap+ro: submounts come along, unmapped; read-only.
			{Destination: "/ro", Source: src, Options: []string{"rbind", "idmap", "ro"}, UIDMappings: own, GIDMappings: own},
			// ridmap with the container's mappings: submounts mapped too.
			{Destination: "/rec", Type: "bind", Source: src, Options: []string{"rbind", "ridmap"}},
			// A file.
			{Destination: "/etc/file", Source: filepath.Join(src, "root0"), Options: []string{"bind", "idmap", "nosuid"}},
			// rbind: a user namespace may not bind a directory without the
			// mounts locked under it.
			{Destination: "/plain", Source: src, Options: []string{"rbind"}},
		},
	}
	files, fds := idmapFiles(t, spec)
	if len(fds) != 4 || len(files) != 2 {
		t.Fatalf("IDMapFDs %v from %d files: want 4 mounts on 2 namespaces", fds, len(files))
	}
	// The trees the runtime makes for a container with a user namespace of
	// its own (runtime/idmap.OpenTrees), here in the test's namespace. A
	// tree is attached once moved: each child needs new ones.
	trees := func(t *testing.T) ([]*os.File, map[int]int) {
		byMount, err := idmap.ForMounts(spec)
		if err != nil {
			t.Fatal(err)
		}
		defer idmap.CloseAll(byMount)
		trees, err := idmap.OpenTrees("", "/", spec, byMount)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idmap.CloseAll(trees) })
		var files []*os.File
		fds := map[int]int{}
		for i, f := range trees {
			fds[i] = 3 + len(files)
			files = append(files, f)
		}
		return files, fds
	}
	tests := []struct {
		name       string
		trees      bool
		cloneflags uintptr
	}{
		{"user namespace fds", false, 0},
		{"trees", true, 0},
		// Root of the child's user namespace is host root (IDs 0-65535
		// map to themselves) without the host's privileges: it could not
		// ID-map these mounts itself, but can move the trees in.
		{"trees in a user namespace", true, unix.CLONE_NEWUSER | unix.CLONE_NEWPID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, rootfs := newBundle(t)
			req, childFiles := childRequest{IDMapFDs: fds, UserNS: tt.cloneflags&unix.CLONE_NEWUSER != 0}, files
			if tt.trees {
				childFiles, req.IDMapTrees = trees(t)
				req.IDMapFDs = nil
			}
			script := `for f in /own/root0 /own/u1000 /ro/root0 /ro/sub/f /rec/root0 /rec/u1000 /rec/sub/f /etc/file /plain/root0 /plain/u1000; do stat -c '%n %u %g' $f; done
touch /ro/new 2>/dev/null || echo ro refused
echo x 2>/dev/null > /rec/sub/new || echo unmapped writer refused`
			req.Rootfs, req.Spec, req.Script = rootfs, spec, script
			res := runChildFiles(t, bundle, req, tt.cloneflags, childFiles)
			mustSucceed(t, res)
			checkOutput(t, res,
				"/own/root0 1000 1000", "/own/u1000 65534 65534",
				"/ro/root0 1000 1000", "/ro/sub/f 0 0",
				"/rec/root0 2000 2000", "/rec/u1000 3000 3000", "/rec/sub/f 2000 2000",
				"/etc/file 2000 2000",
				"/plain/root0 0 0", "/plain/u1000 1000 1000",
				"ro refused",
				// Root (host ID 0) has no on-disk ID through the mount: EOVERFLOW.
				"unmapped writer refused",
			)
			checkMount(t, res, "/own", "", "rw", "idmapped")
			checkMount(t, res, "/ro", "", "ro", "idmapped")
			checkMount(t, res, "/rec", "", "idmapped")
			checkMount(t, res, "/rec/sub", "tmpfs", "idmapped")
			checkMount(t, res, "/etc/file", "", "nosuid", "idmapped")
			if m := checkMount(t, res, "/ro/sub", "tmpfs"); m != nil && hasOpt(m.Options, "idmapped") {
				t.Errorf("/ro/sub (idmap, not ridmap) is ID-mapped: %s", m.Options)
			}
			if m := checkMount(t, res, "/plain", ""); m != nil && hasOpt(m.Options, "idmapped") {
				t.Errorf("/plain is ID-mapped: %s", m.Options)
			}
		})
	}
}

func TestIDMappedMountErrors(t *testing.T) {
	requireRoot(t)
	src := t.TempDir()
	own := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	devNull, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	tests := []struct {
		name   string
		mount  specs.Mount
		fds    map[int]int
		files  []*os.File
		class  error
		substr string
	}{
		{"no fd passed", specs.Mount{Destination: "/d", Source: src, Options: []string{"bind", "idmap"}}, nil, nil,
			errdefs.ErrNotImplemented, "none was passed for it (Config.IDMapFDs)"},
		{"own mappings, no fd", specs.Mount{Destination: "/d", Source: src, Options: []string{"bind"}, UIDMappings: own, GIDMappings: own}, map[int]int{0: 3}, nil,
			errdefs.ErrNotImplemented, "none was passed"},
		{"not a user namespace", specs.Mount{Destination: "/d", Source: src, Options: []string{"bind", "ridmap"}}, map[int]int{1: 3}, []*os.File{devNull},
			errdefs.ErrInvalidArgument, "is not a user namespace"},
		{"not a bind", specs.Mount{Destination: "/d", Type: "tmpfs", Source: "tmpfs", Options: []string{"idmap"}}, map[int]int{1: 3}, []*os.File{devNull},
			errdefs.ErrInvalidArgument, "only bind mounts can be ID-mapped"},
		{"uid without gid", specs.Mount{Destination: "/d", Source: src, Options: []string{"bind"}, UIDMappings: own}, nil, nil,
			errdefs.ErrInvalidArgument, "must be given together"},
		{"tree that is no mount", specs.Mount{Destination: "/d", Source: src, Options: []string{"bind", "idmap"}}, nil, []*os.File{devNull},
			errdefs.ErrInvalidArgument, "not the root of a mount tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, rootfs := newBundle(t)
			spec := &specs.Spec{Root: &specs.Root{Path: "rootfs"}, Mounts: []specs.Mount{
				{Destination: "/first", Type: "tmpfs", Source: "tmpfs"}, tt.mount}}
			req := childRequest{Rootfs: rootfs, Spec: spec, IDMapFDs: tt.fds}
			if strings.HasPrefix(tt.name, "tree") {
				req.IDMapFDs, req.IDMapTrees = nil, map[int]int{1: 3}
			}
			res := runChildFiles(t, bundle, req, 0, tt.files)
			if res.Stage != "prepare" || res.Class != tt.class.Error() || !strings.Contains(res.Err, tt.substr) || !strings.Contains(res.Err, "mounts[1]") {
				t.Fatalf("stage %q class %q error %q: want prepare to fail with %v naming mounts[1] and mentioning %q", res.Stage, res.Class, res.Err, tt.class, tt.substr)
			}
			// Refused before anything was mounted.
			if _, err := os.Stat(filepath.Join(rootfs, "first")); err == nil {
				t.Error("mounts[0] was done before the bad entry was refused")
			}
		})
	}
}
