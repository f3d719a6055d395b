package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// volumeDirs lists the volume directories of the daemon's default
// namespace.
func (d *daemon) volumeDirs() []string {
	entries, _ := os.ReadDir(filepath.Join(d.root, "volumes", "default"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// checkNoVolumes checks that no volume is listed and no directory is left.
func (d *daemon) checkNoVolumes() {
	d.t.Helper()
	if ls := strings.TrimSpace(d.must("volume", "ls", "-q")); ls != "" {
		d.t.Errorf("volumes left: %q", ls)
	}
	if dirs := d.volumeDirs(); len(dirs) != 0 {
		d.t.Errorf("volume directories left: %v", dirs)
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestNamedVolumes: data in a named volume survives replacing the
// container; a new volume is seeded from the image; volume create, ls,
// inspect, rm; an in-use volume is not removed.
func TestNamedVolumes(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	d.must("pull", "-q", bb)

	d.must("run", "--name", "writer", "-v", "data:/data", bb, "sh", "-c", "echo kept > /data/f")
	d.must("rm", "writer")
	if out := d.must("run", "--rm", "-v", "data:/data:ro", bb, "cat", "/data/f"); out != "kept\n" {
		t.Errorf("the replacing container read %q, want kept", out)
	}
	if ls := d.must("volume", "ls"); ls != "DRIVER    VOLUME NAME\nlocal     data\n" {
		t.Errorf("volume ls:\n%s", ls)
	}
	var insp []map[string]any
	if err := json.Unmarshal([]byte(d.must("volume", "inspect", "data")), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("volume inspect: %v", err)
	}
	mp := filepath.Join(d.root, "volumes", "default", "data", "_data")
	if insp[0]["Name"] != "data" || insp[0]["Driver"] != "local" || insp[0]["Mountpoint"] != mp || insp[0]["Scope"] != "local" {
		t.Errorf("volume inspect: %v", insp[0])
	}
	if b, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(b) != "kept\n" {
		t.Errorf("volume directory: %q, %v", b, err)
	}

	// In use (even by a container that is not running): refused, naming it.
	d.must("create", "--name", "holder", "-v", "data:/data", bb)
	r := d.run("volume", "rm", "data")
	if r.Code != 125 || !strings.Contains(r.Stderr, "in use") || !strings.Contains(r.Stderr, "holder") {
		t.Errorf("volume rm of an in-use volume: %s", r)
	}
	if f := d.must("inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.Destination}} {{.RW}}{{end}}", "holder"); f != "volume data "+mp+" /data true\n" {
		t.Errorf("inspect Mounts: %q", f)
	}
	d.must("rm", "-v", "holder") // -v leaves named volumes
	if out := strings.TrimSpace(d.must("volume", "rm", "data")); out != "data" {
		t.Errorf("volume rm printed %q", out)
	}
	if r := d.run("volume", "rm", "data"); r.Code != 125 || !strings.Contains(r.Stderr, "no such volume") {
		t.Errorf("volume rm of a missing volume: %s", r)
	}
	d.must("volume", "rm", "-f", "data")

	// Seeding: a new volume over the image's /etc gets its content.
	if out := d.must("run", "--rm", "-v", "seeded:/etc", bb, "cat", "/etc/group"); !strings.Contains(out, "root:x:0:") {
		t.Errorf("seeded volume: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(d.root, "volumes", "default", "seeded", "_data", "passwd")); err != nil || !strings.Contains(string(b), "root:") {
		t.Errorf("seeded volume directory: %v", err)
	}
	// volume create: named, idempotent, and bad names.
	if out := d.must("volume", "create", "--label", "k=v", "made"); out != "made\n" {
		t.Errorf("volume create printed %q", out)
	}
	d.must("volume", "create", "made")
	if r := d.run("volume", "create", "a/b"); r.Code != 1 || !strings.Contains(r.Stderr, "volume name") {
		t.Errorf("volume create a/b: %s", r)
	}
	if r := d.run("run", "--rm", "-v", "x:/d", bb, "true"); r.Code != 125 || !strings.Contains(r.Stderr, "too short") {
		t.Errorf("run -v x:/d: %s", r)
	}
	if f := d.must("volume", "ls", "--format", "{{.Name}} {{.Labels}}", "--filter", "label=k"); f != "made k=v\n" {
		t.Errorf("volume ls --filter label=k: %q", f)
	}
	// prune keeps named volumes unless -a.
	if out := d.must("volume", "prune", "-f"); out != "Total reclaimed space: 0B\n" {
		t.Errorf("volume prune: %q", out)
	}
	if out := d.must("volume", "prune", "-a", "-f"); !strings.Contains(out, "Deleted Volumes:\nmade\nseeded\n\nTotal reclaimed space: ") {
		t.Errorf("volume prune -a: %q", out)
	}
	d.checkNoVolumes()
}

// TestAnonymousVolumes: an image VOLUME gets a seeded anonymous volume,
// removed by rm -v and run --rm, kept by rm for prune.
func TestAnonymousVolumes(t *testing.T) {
	reg := startRegistry(t)
	name := reg.Domain + "/skiff/withvol:latest"
	img, err := imagebuild.Build(imagebuild.Options{Name: name, Volumes: []string{"/etc", "/data"}})
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "skiff/withvol", "latest", img)
	d := startDaemon(t)
	d.must("pull", "-q", name)

	anons := func(ctr string) []string {
		t.Helper()
		names := strings.Fields(d.must("inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", ctr))
		for _, n := range names {
			if !hex64.MatchString(n) {
				t.Errorf("anonymous volume name %q", n)
			}
		}
		return names
	}
	d.must("create", "--name", "ca", name, "sh", "-c", "cat /etc/passwd; ls /data")
	if vols := anons("ca"); len(vols) != 2 {
		t.Fatalf("container a has volumes %v, want two", vols)
	}
	if out := d.must("start", "-a", "ca"); !strings.Contains(out, "root:x:0:0") {
		t.Errorf("anonymous /etc volume not seeded: %q", out)
	}
	if n := len(strings.Fields(d.must("volume", "ls", "-q"))); n != 2 {
		t.Errorf("volume ls lists %d volumes, want 2", n)
	}
	d.must("rm", "-v", "ca")
	d.checkNoVolumes()

	// -v over an image VOLUME replaces its anonymous volume.
	d.must("create", "--name", "cb", "-v", "named:/data", name)
	if vols := strings.Fields(d.must("inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", "cb")); len(vols) != 2 || vols[0] != "named" && vols[1] != "named" {
		t.Errorf("container cb volumes %v", vols)
	}
	d.must("rm", "cb") // keeps its anonymous volume, for prune
	if n := len(strings.Fields(d.must("volume", "ls", "-q", "--filter", "dangling=true"))); n != 2 {
		t.Errorf("dangling volumes after rm without -v: %d, want 2", n)
	}
	if out := d.must("volume", "prune", "-f"); !strings.Contains(out, "Deleted Volumes:\n") || strings.Contains(out, "named") {
		t.Errorf("volume prune: %q", out)
	}
	if ls := strings.TrimSpace(d.must("volume", "ls", "-q")); ls != "named" {
		t.Errorf("after prune: %q, want named", ls)
	}
	d.must("volume", "rm", "named")

	// run --rm takes its anonymous volumes (and -v PATH's) with it.
	if out := d.must("run", "--rm", "-v", "/scratch", name, "sh", "-c", "echo x > /scratch/f && cat /scratch/f"); out != "x\n" {
		t.Errorf("run --rm -v /scratch: %q", out)
	}
	d.checkNoVolumes()
}

// TestBindTmpfsAndBadMounts: binds rw and ro, -v making a missing host
// directory, --tmpfs; a --mount of a missing source is exit 125 with
// nothing left, as are other bad mounts.
func TestBindTmpfsAndBadMounts(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	d.must("pull", "-q", bb)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in"), []byte("hello\n"), 0o644)

	if out := d.must("run", "--rm", "--mount", "type=bind,source="+host+",target=/h", bb, "sh", "-c", "cat /h/in; echo w > /h/out"); out != "hello\n" {
		t.Errorf("rw bind: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "w\n" {
		t.Errorf("rw bind: host sees %q", b)
	}
	r := d.run("run", "--rm", "-v", host+":/h:ro,z", bb, "sh", "-c", "echo x > /h/ro")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Read-only file system") || !strings.Contains(r.Stderr, "SELinux") {
		t.Errorf("ro bind: %s", r)
	}
	made := filepath.Join(host, "made", "here")
	d.must("run", "--rm", "-v", made+":/m", bb, "true")
	if fi, err := os.Stat(made); err != nil || !fi.IsDir() {
		t.Errorf("-v did not make the missing host directory: %v", err)
	}
	out := d.must("run", "--rm", "--tmpfs", "/t:size=1m,mode=1770", "--mount", "type=tmpfs,dst=/u,tmpfs-size=2m", bb,
		"sh", "-c", "grep -E ' /(t|u) ' /proc/mounts")
	if !strings.Contains(out, "tmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1770") || !strings.Contains(out, "tmpfs /u tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k") {
		t.Errorf("tmpfs mounts:\n%s", out)
	}

	missing := filepath.Join(host, "nope")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mount", "type=bind,src=" + missing + ",dst=/x"}, "bind source path does not exist: " + missing},
		{[]string{"-v", "/anon", "-v", filepath.Join(host, "fresh") + ":/f", "--mount", "type=bind,src=" + missing + ",dst=/x"}, "bind source path does not exist"},
		{[]string{"-v", "/a:/b:bogus"}, "invalid mode: bogus"},
		{[]string{"--mount", "type=bind,dst=/x"}, "field Source must not be empty"},
		{[]string{"--mount", "type=volume,src=v1,dst=/x", "-v", "v2:/x"}, "duplicate mount point"},
		{[]string{"--tmpfs", "/t:size=huge"}, "invalid tmpfs option"},
		{[]string{"-v", "rel/dir:/x"}, "volume name"},
	} {
		args := append(append([]string{"run", "--rm"}, tc.args...), bb, "true")
		r := d.run(args...)
		if r.Code != 125 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("want exit 125 and %q: %s", tc.want, r)
		}
	}
	if _, err := os.Stat(filepath.Join(host, "fresh")); !os.IsNotExist(err) {
		t.Errorf("a failed run left the host directory it made: %v", err)
	}
	if ps := strings.TrimSpace(d.must("ps", "-aq")); ps != "" {
		t.Errorf("failed runs left containers: %q", ps)
	}
	d.checkNoVolumes()
	if entries, _ := os.ReadDir(filepath.Join(d.state, "containers", "default")); len(entries) != 0 {
		t.Errorf("bundles left: %v", entries)
	}
}
