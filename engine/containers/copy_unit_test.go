package containers

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/engine/network"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/archive"
)

// testView is an fsView over a temporary root holding: etc/passwd,
// tmp/etc-link -> /etc, tmp/pw -> ../../../../etc/passwd, tmp/dangling ->
// /nowhere/x, data/ (a read-only bind), rw/ (a writable one), dev/null (a
// character device when run as root). The host's /etc is never inside.
func testView(t *testing.T, readOnly bool) *fsView {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "tmp", "data", "rw", "dev"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("container\n"), 0o644)
	os.Symlink("/etc", filepath.Join(root, "tmp", "etc-link"))
	os.Symlink("../../../../etc/passwd", filepath.Join(root, "tmp", "pw"))
	os.Symlink("/nowhere/x", filepath.Join(root, "tmp", "dangling"))
	if os.Geteuid() == 0 {
		unix.Mknod(filepath.Join(root, "dev", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := &fsView{ref: "c", root: os.NewFile(uintptr(fd), root), rootPath: root, readOnly: readOnly,
		binds: []viewBind{{dest: "/data", readOnly: true}, {dest: "/rw"}}}
	t.Cleanup(func() { v.root.Close() })
	return v
}

func TestViewLookup(t *testing.T) {
	v := testView(t, false)
	for _, tc := range []struct {
		path    string
		follow  bool
		typ     uint32
		name    string
		link    string
		wantErr error
	}{
		{path: "/etc/passwd", typ: unix.S_IFREG, name: "passwd"},
		{path: "etc/passwd", typ: unix.S_IFREG, name: "passwd"},
		{path: "/tmp/pw", typ: unix.S_IFLNK, name: "pw", link: "/etc/passwd"},
		{path: "/tmp/pw", follow: true, typ: unix.S_IFREG, name: "pw"},
		{path: "/tmp/etc-link/passwd", typ: unix.S_IFREG, name: "passwd"},
		{path: "/tmp/etc-link/", typ: unix.S_IFDIR, name: "etc-link"},
		{path: "/tmp/etc-link/.", typ: unix.S_IFDIR, name: "."},
		{path: "/tmp/dangling", typ: unix.S_IFLNK, name: "dangling", link: "/nowhere/x"},
		{path: "/", typ: unix.S_IFDIR, name: "."},
		{path: "/../../etc/passwd", typ: unix.S_IFREG, name: "passwd"},
		{path: "/nope", wantErr: errdefs.ErrNotFound},
		{path: "/tmp/dangling", follow: true, wantErr: errdefs.ErrNotFound},
		{path: "/etc/passwd/", wantErr: unix.ENOTDIR},
	} {
		f, err := v.lookup(tc.path, tc.follow)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("lookup(%q, %v): %v, want %v", tc.path, tc.follow, err, tc.wantErr)
			}
			if f != nil {
				f.close()
			}
			continue
		}
		if err != nil {
			t.Errorf("lookup(%q, %v): %v", tc.path, tc.follow, err)
			continue
		}
		st, err := v.pathStat(tc.path, f)
		if err != nil || f.st.Mode&unix.S_IFMT != tc.typ || st.Name != tc.name || st.LinkTarget != tc.link {
			t.Errorf("lookup(%q, %v): type %o name %q link %q (%v); want %o %q %q", tc.path, tc.follow, f.st.Mode&unix.S_IFMT, st.Name, st.LinkTarget, err, tc.typ, tc.name, tc.link)
		}
		if tc.typ == unix.S_IFREG {
			// What was found is the container's file.
			fd, err := unix.Openat(int(f.dir.Fd()), f.base, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				t.Errorf("lookup(%q): open: %v", tc.path, err)
			} else {
				buf := make([]byte, 64)
				n, _ := unix.Read(fd, buf)
				unix.Close(fd)
				if string(buf[:n]) != "container\n" {
					t.Errorf("lookup(%q) found a file holding %q, not the container's /etc/passwd", tc.path, buf[:n])
				}
			}
		}
		f.close()
	}
	var nf *fileNotFound
	if _, err := v.lookup("/nope", false); !errors.As(err, &nf) || err.Error() != "Could not find the file /nope in container c" {
		t.Errorf("missing path: %v", err)
	}
}

func TestCopyDestination(t *testing.T) {
	v := testView(t, false)
	file := &CopySource{Name: "f"}
	dir := &CopySource{Name: "src", IsDir: true}
	for _, tc := range []struct {
		name    string
		dst     string
		src     *CopySource
		wantDir string
		rebase  archive.Rebase
		wantErr string
	}{
		{"file into dir", "/tmp", file, "/tmp", archive.Rebase{}, ""},
		{"file to new name", "/tmp/new", file, "/tmp", archive.Rebase{From: "f", To: "new"}, ""},
		{"file over file", "/etc/passwd", file, "/etc", archive.Rebase{From: "f", To: "passwd"}, ""},
		{"through a symlink to a dir", "/tmp/etc-link", file, "/etc", archive.Rebase{}, ""},
		{"symlink to a file is followed", "/tmp/pw", file, "/etc", archive.Rebase{From: "f", To: "passwd"}, ""},
		{"dangling symlink names the new file", "/tmp/dangling", file, "/nowhere", archive.Rebase{From: "f", To: "x"}, ""},
		{"dir to new name", "/tmp/newdir", dir, "/tmp", archive.Rebase{From: "src", To: "newdir"}, ""},
		{"dir over file", "/etc/passwd", dir, "", archive.Rebase{}, "cannot copy directory"},
		{"file to missing dir/", "/tmp/nodir/", file, "", archive.Rebase{}, "no such directory"},
		{"stdin tar into dir", "/tmp", nil, "/tmp", archive.Rebase{}, ""},
		{"stdin tar into file", "/etc/passwd", nil, "", archive.Rebase{}, `destination "c:/etc/passwd" must be a directory`},
		{"stdin tar into missing", "/tmp/none", nil, "", archive.Rebase{}, `destination "c:/tmp/none" must be a directory`},
	} {
		gotDir, rb, err := v.copyDestination(tc.dst, tc.src)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%s: %q, %v; want error %q", tc.name, gotDir, err, tc.wantErr)
			}
			continue
		}
		if err != nil || gotDir != tc.wantDir || rb != tc.rebase {
			t.Errorf("%s: %q, %+v, %v; want %q, %+v", tc.name, gotDir, rb, err, tc.wantDir, tc.rebase)
		}
	}
	if os.Geteuid() == 0 {
		if _, _, err := v.copyDestination("/dev/null", file); err == nil || err.Error() != `destination "c:/dev/null" must be a directory or a regular file: got a device` {
			t.Errorf("copy onto a device: %v", err)
		}
	}
}

func TestCheckWritable(t *testing.T) {
	for _, tc := range []struct {
		readOnly bool
		at       string
		want     string
	}{
		{false, "/tmp", ""},
		{false, "/data", "mounted volume is marked read-only"},
		{false, "/data/sub", "mounted volume is marked read-only"},
		{false, "/database", ""},
		{true, "/tmp", "container rootfs is marked read-only"},
		{true, "/rw/x", ""},
		{true, "/data", "mounted volume is marked read-only"},
	} {
		got := ""
		if err := testView(t, tc.readOnly).checkWritable(tc.at); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("checkWritable(%q, read-only %v) = %q, want %q", tc.at, tc.readOnly, got, tc.want)
		}
	}
}

func TestCommitConfig(t *testing.T) {
	img := ocispec.ImageConfig{
		Env:          []string{"PATH=/bin", "A=image", "B=image"},
		Entrypoint:   []string{"/entry"},
		Cmd:          []string{"default"},
		WorkingDir:   "/w",
		Labels:       map[string]string{"l": "image", "m": "image"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
		Volumes:      map[string]struct{}{"/v": {}},
	}
	for _, tc := range []struct {
		name string
		cc   CreateConfig
		want ocispec.ImageConfig
	}{
		{"image as it is", CreateConfig{}, img},
		{"the container's options", CreateConfig{
			Cmd: []string{"run", "this"}, Env: []string{"A=user", "B", "C=user"}, WorkingDir: "/x/", User: "nobody",
			Labels: map[string]string{"m": "user"}, StopSignal: "SIGINT",
			PortBindings: []network.PortMapping{{ContainerPort: 53, Protocol: "udp"}},
			Mounts:       []Mount{{Type: MountVolume, Target: "/anon"}, {Type: MountVolume, Source: "named", Target: "/named"}, {Type: MountBind, Source: "/h", Target: "/b"}},
		}, ocispec.ImageConfig{
			Env: []string{"A=user", "C=user", "PATH=/bin"}, Entrypoint: []string{"/entry"}, Cmd: []string{"run", "this"},
			WorkingDir: "/x", User: "nobody", StopSignal: "SIGINT",
			Labels:       map[string]string{"l": "image", "m": "user"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}},
			Volumes:      map[string]struct{}{"/v": {}, "/anon": {}},
		}},
		{"--entrypoint drops the image's Cmd", CreateConfig{EntrypointSet: true, Entrypoint: []string{"/other"}},
			func() ocispec.ImageConfig { c := img; c.Entrypoint, c.Cmd = []string{"/other"}, nil; return c }()},
		{"--entrypoint '' with arguments", CreateConfig{EntrypointSet: true, Entrypoint: []string{""}, Cmd: []string{"sh"}},
			func() ocispec.ImageConfig { c := img; c.Entrypoint, c.Cmd = nil, []string{"sh"}; return c }()},
	} {
		got := commitConfig(img, tc.cc)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
	if img.Labels["m"] != "image" || len(img.Env) != 3 {
		t.Errorf("commitConfig changed the image's config: %+v", img)
	}
}

func TestRuntimeMountPoints(t *testing.T) {
	got, err := runtimeMountPoints([]byte(`{"mounts":[{"destination":"/proc"},{"destination":"/etc/hosts/"},{"destination":"/"},{"destination":"/dev/pts"}]}`))
	if err != nil || !reflect.DeepEqual(got, []string{"proc", "etc/hosts", "dev/pts"}) {
		t.Errorf("runtimeMountPoints = %q, %v", got, err)
	}
}
