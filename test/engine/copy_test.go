package engine

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// writeFile writes a host file for a copy test.
func writeFile(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// readHost reads a host file, "" if it is missing.
func readHost(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// tarOf makes a tar stream of the entries (name → content; a name ending
// in "/" is a directory, one with " -> " a symlink).
func tarOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		name, content, _ := strings.Cut(e, "=")
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(content))}
		switch {
		case strings.Contains(name, " -> "):
			h.Name, h.Linkname, _ = strings.Cut(name, " -> ")
			h.Typeflag, h.Size = tar.TypeSymlink, 0
		case strings.HasSuffix(name, "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(content))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarEntries lists a tar stream's entry names and the contents of its
// regular files.
func tarEntries(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

// mounts lists the mount points under the daemon's directories in the
// host's mount namespace (the daemon's: it does not leave it).
// mounts lists the mounts under the test's directories, but for network
// namespace binds: those go when an exited container's network is torn
// down, which the daemon does after `run` or `start -a` has returned, so a
// snapshot may or may not hold one (they are not cp's; the network tests
// check that they go).
func (d *daemon) mounts() string {
	var out []string
	netns := filepath.Join(d.state, "netns") + "/"
	for _, m := range testutil.MountsUnder(filepath.Dir(d.root)) {
		if !strings.HasPrefix(m, netns) {
			out = append(out, m)
		}
	}
	return strings.Join(out, "\n")
}

// TestCopy: cp of files and directories into and out of a running
// container with docker's rules, ownership (root's, or the source's with
// -a), tar streams both ways, a stopped container (whose root filesystem
// is not even mounted), volumes; and no mount left behind.
func TestCopy(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	d.must("pull", "-q", bb)
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "hello.txt"), "hello\n", 0o640)
	if err := os.Chown(filepath.Join(host, "hello.txt"), 1234, 4321); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(host, "dir", "a"), "A", 0o644)
	writeFile(t, filepath.Join(host, "dir", "sub", "b"), "B", 0o600)

	d.must("run", "-d", "--name", "web", "-v", "vol:/data", bb, "sleep", "1000")
	mountsBefore := d.mounts()
	if !strings.Contains(mountsBefore, "/rootfs") {
		t.Fatalf("the mount listing does not show the running container's root filesystem: %q", mountsBefore)
	}
	inCtr := func(script string) string {
		t.Helper()
		return d.must("exec", "web", "sh", "-c", script)
	}

	// A file into a directory: owned by the container's root; with -a by
	// the source's owner; the mode is kept.
	d.must("cp", filepath.Join(host, "hello.txt"), "web:/tmp")
	d.must("cp", "-a", filepath.Join(host, "hello.txt"), "web:/tmp/kept.txt")
	if out := inCtr("cat /tmp/hello.txt; stat -c '%u:%g %a' /tmp/hello.txt /tmp/kept.txt"); out != "hello\n0:0 640\n1234:4321 640\n" {
		t.Errorf("copied file in the container: %q", out)
	}
	// A directory to a new name, then into the existing directory, then
	// its contents (DIR/.) into another.
	d.must("cp", filepath.Join(host, "dir"), "web:/opt")
	d.must("cp", filepath.Join(host, "dir"), "web:/opt")
	inCtr("mkdir /srv2")
	d.must("cp", filepath.Join(host, "dir")+"/.", "web:/srv2")
	if out := inCtr("cat /opt/a /opt/sub/b /opt/dir/a /opt/dir/sub/b /srv2/a /srv2/sub/b; ls /srv2"); out != "ABABABa\nsub\n" {
		t.Errorf("copied directories: %q", out)
	}
	// A file over an existing file; a directory over a file is refused.
	d.must("cp", filepath.Join(host, "dir", "a"), "web:/tmp/hello.txt")
	if out := inCtr("cat /tmp/hello.txt"); out != "A" {
		t.Errorf("file over file: %q", out)
	}
	if r := d.run("cp", filepath.Join(host, "dir"), "web:/tmp/hello.txt"); r.Code != 1 || !strings.Contains(r.Stderr, "cannot copy directory") {
		t.Errorf("directory over a file: %s", r)
	}
	// Into a volume: the volume's directory has it.
	d.must("cp", filepath.Join(host, "dir", "a"), "web:/data/in-volume")
	if got := readHost(t, filepath.Join(d.root, "volumes", "default", "vol", "_data", "in-volume")); got != "A" {
		t.Errorf("file copied into the volume: the volume holds %q", got)
	}

	// Out of the container: a directory to a new name, a file, a file
	// from a volume; owned by the caller.
	out := filepath.Join(host, "out")
	d.must("cp", "web:/opt", out)
	d.must("cp", "web:/etc/passwd", filepath.Join(host, "passwd"))
	d.must("cp", "web:/data/in-volume", host)
	if got := readHost(t, filepath.Join(out, "a")) + readHost(t, filepath.Join(out, "sub", "b")) + readHost(t, filepath.Join(host, "in-volume")); got != "ABA" {
		t.Errorf("copied out of the container: %q", got)
	}
	if got := readHost(t, filepath.Join(host, "passwd")); !strings.HasPrefix(got, "root:x:0:0:root:/root:/bin/sh\nnobody:") {
		t.Errorf("the container's /etc/passwd came out as %q", got)
	}
	d.must("cp", "web:/tmp/kept.txt", filepath.Join(host, "kept-out"))
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(host, "kept-out"), &st); err != nil || st.Uid != 0 || st.Mode&0o777 != 0o640 {
		t.Errorf("file copied out: uid %d mode %o (%v), want the caller's (0) and 640", st.Uid, st.Mode&0o777, err)
	}

	// Tar streams: "-" in, "-" out.
	d.runIn(tarOf(t, "x/", "x/y=from a tar\n"), "cp", "-", "web:/tmp")
	if out := inCtr("cat /tmp/x/y"); out != "from a tar\n" {
		t.Errorf("tar from stdin: %q", out)
	}
	if r := d.runIn(tarOf(t, "z=1"), "cp", "-", "web:/etc/passwd"); r.Code != 1 || !strings.Contains(r.Stderr, `destination "web:/etc/passwd" must be a directory`) {
		t.Errorf("tar from stdin into a file: %s", r)
	}
	r := d.run("cp", "web:/opt", "-")
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	if ents := tarEntries(t, []byte(r.Stdout)); ents["opt/a"] != "A" || ents["opt/sub/b"] != "B" {
		t.Errorf("tar to stdout has %v", ents)
	}
	if ents := tarEntries(t, []byte(d.must("cp", "web:/opt/.", "-"))); ents["./a"] != "A" {
		t.Errorf("tar of /opt/. to stdout has %v", ents)
	}

	// A missing path: docker's message, exit 1.
	if r := d.run("cp", "web:/nope", host); r.Code != 1 || strings.TrimSpace(r.Stderr) != "Error response from daemon: Could not find the file /nope in container web" {
		t.Errorf("cp of a missing path: %s", r)
	}
	if r := d.run("cp", filepath.Join(host, "hello.txt"), "web:/no/such/file"); r.Code != 1 || !strings.Contains(r.Stderr, "Could not find the file /no/such in container web") {
		t.Errorf("cp into a missing directory: %s", r)
	}
	if r := d.run("cp", filepath.Join(host, "hello.txt"), "web:/tmp/new-dir/"); r.Code != 1 || !strings.Contains(r.Stderr, "no such directory") {
		t.Errorf("cp of a file to a missing directory/: %s", r)
	}
	if r := d.run("cp", filepath.Join(host, "missing"), "web:/tmp"); r.Code != 1 || !strings.Contains(r.Stderr, "no such file or directory") {
		t.Errorf("cp of a missing host file: %s", r)
	}
	if r := d.run("cp", "a", "b"); r.Code != 1 || !strings.Contains(r.Stderr, "must specify at least one container source") {
		t.Errorf("cp without a container: %s", r)
	}

	if after := d.mounts(); after != mountsBefore {
		t.Errorf("cp changed the host's mounts:\nbefore:\n%s\nafter:\n%s", mountsBefore, after)
	}

	// A container that never ran, and one that exited and whose root
	// filesystem is not mounted (as after a reboot): both copy both ways,
	// and their root filesystem is not left mounted.
	d.must("create", "--name", "fresh", bb, "cat", "/hello.txt")
	d.must("cp", filepath.Join(host, "hello.txt"), "fresh:/")
	if out := d.must("start", "-a", "fresh"); out != "hello\n" {
		t.Errorf("the created container read %q", out)
	}
	d.must("run", "--name", "done", bb, "sh", "-c", "echo bye > /bye")
	id := strings.TrimSpace(d.must("inspect", "--format", "{{.Id}}", "done"))
	rootfs := filepath.Join(d.state, "containers", "default", id, "rootfs")
	if err := unix.Unmount(rootfs, 0); err != nil {
		t.Fatalf("unmount the exited container's rootfs: %v", err)
	}
	mountsBefore = d.mounts()
	d.must("cp", "done:/bye", filepath.Join(host, "bye"))
	d.must("cp", filepath.Join(host, "hello.txt"), "done:/tmp/")
	if got := readHost(t, filepath.Join(host, "bye")); got != "bye\n" {
		t.Errorf("copied out of the exited container: %q", got)
	}
	if after := d.mounts(); after != mountsBefore || strings.Contains(after, rootfs) {
		t.Errorf("cp of a stopped container left mounts:\nbefore:\n%s\nafter:\n%s", mountsBefore, after)
	}
	d.must("start", "done")
	if code := strings.TrimSpace(d.must("wait", "done")); code != "0" {
		t.Errorf("the container restarted after cp exited %s", code)
	}
}

// TestCopyConfined: a container's symlinks resolve inside it, never on
// the host; a tar climbing out is refused; read-only volumes and root
// filesystems are refused as docker does.
func TestCopyConfined(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	d.must("pull", "-q", bb)
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "f"), "planted\n", 0o644)
	marker := "skiff-cp-escape-" + filepath.Base(filepath.Dir(host))

	d.must("run", "-d", "--name", "evil", bb, "sh", "-c",
		"ln -s /etc /tmp/etc-link && ln -s ../../../../../../../etc/passwd /tmp/pw && ln -s /tmp /tmp/tmp-link && sleep 1000")
	waitFor(t, "the container's symlinks", 10*time.Second, func() bool {
		return d.run("exec", "evil", "test", "-L", "/tmp/tmp-link").Code == 0
	})
	hostPasswd := readHost(t, "/etc/passwd")

	// Out through symlinks: the container's /etc/passwd, not the host's.
	d.must("cp", "-L", "evil:/tmp/pw", filepath.Join(host, "pw"))
	d.must("cp", "evil:/tmp/etc-link/passwd", filepath.Join(host, "pw2"))
	for _, p := range []string{"pw", "pw2"} {
		if got := readHost(t, filepath.Join(host, p)); !strings.HasPrefix(got, "root:x:0:0:root:/root:/bin/sh\nnobody:") || got == hostPasswd {
			t.Errorf("%s: the container's /etc/passwd through a symlink came out as %q", p, got)
		}
	}
	// Without -L the link itself comes out.
	d.must("cp", "evil:/tmp/pw", filepath.Join(host, "link"))
	if target, err := os.Readlink(filepath.Join(host, "link")); err != nil || target != "../../../../../../../etc/passwd" {
		t.Errorf("cp of a symlink without -L: %q, %v", target, err)
	}

	// In through symlinks: into the container's /etc and /tmp.
	d.must("cp", filepath.Join(host, "f"), "evil:/tmp/etc-link/"+marker)
	d.must("cp", filepath.Join(host, "f"), "evil:/tmp/tmp-link/")
	if _, err := os.Lstat("/etc/" + marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cp through the container's /tmp/etc-link wrote the host's /etc/%s (%v)", marker, err)
		os.Remove("/etc/" + marker)
	}
	if out := d.must("exec", "evil", "cat", "/etc/"+marker, "/tmp/f"); out != "planted\nplanted\n" {
		t.Errorf("files copied through symlinks: %q", out)
	}
	// A tar with a symlink to / and an entry through it, and one climbing
	// out with ../: never the host.
	r := d.runIn(tarOf(t, "up -> /", "up/tmp/"+marker+"/x=1"), "cp", "-", "evil:/")
	if r.Code != 0 {
		t.Errorf("tar with an absolute symlink: %s", r)
	}
	if _, err := os.Lstat("/tmp/" + marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a tar entry through a symlink reached the host's /tmp/%s (%v)", marker, err)
		os.RemoveAll("/tmp/" + marker)
	}
	if out := d.must("exec", "evil", "cat", "/tmp/"+marker+"/x"); out != "1" {
		t.Errorf("the entry through the symlink in the container: %q", out)
	}
	r = d.runIn(tarOf(t, "../../../../../../../tmp/"+marker+"-dotdot=1"), "cp", "-", "evil:/tmp")
	if r.Code != 1 || !strings.Contains(r.Stderr, "climbs above") {
		t.Errorf("tar with ../ entries: %s", r)
	}
	if _, err := os.Lstat("/tmp/" + marker + "-dotdot"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a ../ tar entry reached the host (%v)", err)
		os.Remove("/tmp/" + marker + "-dotdot")
	}

	// Read-only volume; read-only root filesystem (but its writable volume
	// takes files).
	d.must("run", "-d", "--name", "rov", "-v", "data:/data:ro", bb, "sleep", "1000")
	if r := d.run("cp", filepath.Join(host, "f"), "rov:/data/"); r.Code != 1 || !strings.Contains(r.Stderr, "mounted volume is marked read-only") {
		t.Errorf("cp into a read-only volume: %s", r)
	}
	d.must("run", "-d", "--name", "ror", "--read-only", "-v", "rw:/data", bb, "sleep", "1000")
	if r := d.run("cp", filepath.Join(host, "f"), "ror:/tmp/"); r.Code != 1 || !strings.Contains(r.Stderr, "container rootfs is marked read-only") {
		t.Errorf("cp into a read-only root filesystem: %s", r)
	}
	d.must("cp", filepath.Join(host, "f"), "ror:/data/")
	if out := d.must("exec", "ror", "cat", "/data/f"); out != "planted\n" {
		t.Errorf("cp into the writable volume of a read-only container: %q", out)
	}
	// The same on a read-only container that never ran (its mount points
	// are made for the copy).
	d.must("create", "--name", "rofresh", "--read-only", "-v", "rw2:/data2", bb, "cat", "/data2/f")
	if r := d.run("cp", filepath.Join(host, "f"), "rofresh:/"); r.Code != 1 || !strings.Contains(r.Stderr, "container rootfs is marked read-only") {
		t.Errorf("cp into a read-only root filesystem: %s", r)
	}
	d.must("cp", filepath.Join(host, "f"), "rofresh:/data2/")
	if out := d.must("start", "-a", "rofresh"); out != "planted\n" {
		t.Errorf("the read-only container read %q from its volume", out)
	}
	if files, _ := filepath.Glob(filepath.Join(d.root, "volumes", "default", "data", "_data", "*")); len(files) != 0 {
		t.Errorf("the read-only volume got %v", files)
	}
}

// TestExportImport: export | import gives a runnable image with the
// container's changes; export refuses a terminal.
func TestExportImport(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	d.must("pull", "-q", bb)
	d.must("run", "-d", "--name", "src", "-v", "vx:/data", bb, "sh", "-c", "echo exported > /marker; echo in-volume > /data/f; sleep 1000")
	waitFor(t, "the marker", 10*time.Second, func() bool { return d.run("exec", "src", "test", "-f", "/marker").Code == 0 })

	out := filepath.Join(t.TempDir(), "src.tar")
	d.must("export", "-o", out, "src")
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ents := tarEntries(t, data)
	if ents["marker"] != "exported\n" || ents["etc/passwd"] == "" {
		t.Errorf("export lacks the container's files: marker %q, etc/passwd %q", ents["marker"], ents["etc/passwd"])
	}
	if _, ok := ents["data/f"]; ok {
		t.Errorf("export holds the volume's contents")
	}
	// To stdout too.
	if r := d.run("container", "export", "src"); r.Code != 0 || tarEntries(t, []byte(r.Stdout))["marker"] != "exported\n" {
		t.Errorf("export to stdout: exit %d, %d bytes", r.Code, len(r.Stdout))
	}
	if id := strings.TrimSpace(d.must("import", out, "imported:1")); !strings.HasPrefix(id, "sha256:") {
		t.Errorf("import printed %q", id)
	}
	if got := d.must("run", "--rm", "imported:1", "cat", "/marker"); got != "exported\n" {
		t.Errorf("run of the imported export: %q", got)
	}

	p := d.runOnPty("export", "src")
	if code := p.wait(); code != 1 || !strings.Contains(p.output(), "cowardly refusing to save to a terminal") {
		t.Errorf("export to a terminal: exit %d, %q", code, p.output())
	}
}

// TestCommit: commit keeps created and deleted files (whiteouts, opaque
// directories), applies --change, records author and message, pauses a
// running container only while it commits.
func TestCommit(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	d.must("pull", "-q", bb)
	mountsBefore := d.mounts()
	d.must("run", "--name", "changed", "-e", "GREETING=hi", bb, "sh", "-c",
		"echo added > /added && rm /etc/group && rm -rf /usr && mkdir -p /usr/new && mkdir /empty")
	id := strings.TrimSpace(d.must("commit", "-a", "Jane <jane@example.com>", "-m", "a message", "changed", "committed:1"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Errorf("commit printed %q, want an image id", id)
	}
	// docker's commit event, with the new image.
	ev := d.must("events", "--since", "0", "--until", time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano), "--filter", "event=commit",
		"--format", `{{.Actor.Attributes.name}} {{.Actor.Attributes.imageID}} {{.Actor.Attributes.comment}}`)
	if ev != "changed "+id+" a message\n" {
		t.Errorf("commit event: %q", ev)
	}
	out := d.must("run", "--rm", "committed:1", "sh", "-c",
		"cat /added; test -e /etc/group && echo group || echo no-group; ls /usr; test -d /empty && echo empty-dir; echo $GREETING")
	if out != "added\nno-group\nnew\nempty-dir\nhi\n" {
		t.Errorf("the committed image shows %q", out)
	}
	var insp []struct {
		ID      string `json:"Id"`
		Author  string
		Comment string
		Config  struct{ Cmd []string }
		RootFS  struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(d.must("image", "inspect", "committed:1")), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	if insp[0].ID != id || insp[0].Author != "Jane <jane@example.com>" || insp[0].Comment != "a message" || len(insp[0].RootFS.Layers) != 2 ||
		strings.Join(insp[0].Config.Cmd, " ") != "sh -c echo added > /added && rm /etc/group && rm -rf /usr && mkdir -p /usr/new && mkdir /empty" {
		t.Errorf("committed image: %+v", insp[0])
	}
	if h := d.must("history", "--no-trunc", "committed:1"); !strings.Contains(h, "a message") {
		t.Errorf("history lacks the commit message:\n%s", h)
	}

	// --change, a dangling image (no name), and a commit without changes
	// adds no layer.
	id2 := strings.TrimSpace(d.must("container", "commit", "-c", `CMD ["echo","hi"]`, "-c", "ENV FOO=bar", "changed"))
	if out := d.must("run", "--rm", id2); out != "hi\n" {
		t.Errorf("the image committed with CMD [echo hi] printed %q", out)
	}
	if out := d.must("run", "--rm", id2, "sh", "-c", "echo $FOO"); out != "bar\n" {
		t.Errorf("ENV change: %q", out)
	}
	d.must("create", "--name", "untouched", bb, "true")
	d.must("commit", "untouched", "same:1")
	if err := json.Unmarshal([]byte(d.must("image", "inspect", "same:1")), &insp); err != nil || len(insp[0].RootFS.Layers) != 1 {
		t.Errorf("commit of an unchanged container: layers %v (%v)", insp[0].RootFS.Layers, err)
	}
	if r := d.run("commit", "-c", "FROM scratch", "changed"); r.Code != 1 || !strings.Contains(r.Stderr, "FROM") {
		t.Errorf("commit with a bad change: %s", r)
	}
	if r := d.run("commit", "nosuch"); r.Code != 1 || !strings.Contains(r.Stderr, "no such container") {
		t.Errorf("commit of a missing container: %s", r)
	}

	// A running container: paused during the commit, running after it.
	d.must("run", "-d", "--name", "live", bb, "sh", "-c", "echo live > /live; sleep 1000")
	waitFor(t, "the live file", 10*time.Second, func() bool { return d.run("exec", "live", "test", "-f", "/live").Code == 0 })
	d.must("commit", "live", "live:1")
	if st := strings.TrimSpace(d.must("inspect", "--format", "{{.State.Status}}", "live")); st != "running" {
		t.Errorf("after commit the container is %s", st)
	}
	if out := d.must("run", "--rm", "live:1", "cat", "/live"); out != "live\n" {
		t.Errorf("image of the running container: %q", out)
	}
	d.must("rm", "-f", "live", "changed", "untouched")
	if after := d.mounts(); after != mountsBefore {
		t.Errorf("commit left mounts:\nbefore:\n%s\nafter:\n%s", mountsBefore, after)
	}
}

// TestCopyNativeSnapshotter: with the native snapshotter cp and export
// work, and commit, which has no layer of changes to read there, is
// refused saying why.
func TestCopyNativeSnapshotter(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t, "--snapshotter", "native")
	bb := reg.Busybox
	d.must("pull", "-q", bb)
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "f"), "native\n", 0o644)
	d.must("create", "--name", "nat", bb, "cat", "/f")
	d.must("cp", filepath.Join(host, "f"), "nat:/")
	if out := d.must("start", "-a", "nat"); out != "native\n" {
		t.Errorf("the container read %q", out)
	}
	if ents := tarEntries(t, []byte(d.must("export", "nat"))); ents["f"] != "native\n" {
		t.Errorf("export with the native snapshotter lacks /f")
	}
	if r := d.run("commit", "nat", "x:1"); r.Code != 1 || !strings.Contains(r.Stderr, "native snapshotter") || !strings.Contains(r.Stderr, "--snapshotter overlayfs") {
		t.Errorf("commit with the native snapshotter: %s", r)
	}
	if out := d.must("images", "-q"); len(strings.Fields(out)) != 1 {
		t.Errorf("a refused commit left images: %q", out)
	}
}
