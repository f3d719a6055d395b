package engine

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var pushedDigest = regexp.MustCompile(`(?m)^v1: digest: (sha256:[0-9a-f]{64}) size: [0-9]+$`)

// TestPushPullElsewhere: an image pushed to the registry under a new name
// pulls into a fresh skiffd with the same digest, and skopeo reads it; a
// push without rights fails with exit 125 and a message naming the
// registry, repository and what to do, leaving nothing in the registry;
// after login it works.
func TestPushPullElsewhere(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)
	pushed := reg.Domain + "/skiff/pushed:v1"
	d.must("tag", reg.Busybox, pushed)
	out := d.must("push", pushed)
	m := pushedDigest.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "The push refers to repository ["+reg.Domain+"/skiff/pushed]") {
		t.Fatalf("push output: %q", out)
	}
	if !strings.Contains(out, ": Mounted from another repository") {
		t.Errorf("the layer was not mounted from skiff/busybox: %q", out)
	}
	digest := m[1]
	if digest != reg.image.Manifest.Descriptor.Digest.String() {
		t.Errorf("pushed digest %s, want the image's %s", digest, reg.image.Manifest.Descriptor.Digest)
	}
	// Pushing again: everything exists.
	if out := d.must("push", pushed); !strings.Contains(out, "Layer already exists") || !strings.Contains(out, digest) {
		t.Errorf("second push: %q", out)
	}

	d2 := startDaemon(t)
	if out := d2.must("pull", pushed); !strings.Contains(out, "Digest: "+digest) {
		t.Errorf("pull into a fresh skiffd: want digest %s: %q", digest, out)
	}
	if out := d2.must("run", "--rm", pushed, "echo", "pushed ok"); out != "pushed ok\n" {
		t.Errorf("run of the pulled image: %q", out)
	}
	if out, err := runCmd("skopeo", "inspect", "--tls-verify=false", "docker://"+pushed); err != nil || !strings.Contains(out, digest) {
		t.Errorf("skopeo inspect of the pushed image: %v\n%s", err, out)
	}

	// Without rights: a registry behind basic auth.
	target, _ := url.Parse(reg.URL)
	proxy := &faultyProxy{target: target, user: "alice", pass: "s3cret"}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	private := host + "/skiff/private:v1"
	d.must("tag", reg.Busybox, private)
	home := t.TempDir()
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	r := d.run("push", private)
	if r.Code != 125 {
		t.Errorf("push without rights: want exit 125 (an engine refusal): %s", r)
	}
	for _, want := range []string{host, "skiff/private", "skiff login " + host} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("push without rights: the error does not name %q: %s", want, r)
		}
	}
	if strings.Count(strings.TrimSpace(r.Stderr), "\n") > 2 {
		t.Errorf("want one clear error: %s", r)
	}
	if resp, err := http.Get(reg.URL + "/v2/skiff/private/tags/list"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("a refused push left repository skiff/private in the registry (tags/list: %s)", resp.Status)
		}
	}
	if _, err := os.Stat(filepath.Join(reg.Root, "docker/registry/v2/repositories/skiff/private")); err == nil {
		t.Error("a refused push left a repository directory in the registry")
	}
	d.mustIn([]byte("s3cret\n"), "login", "-u", "alice", "--password-stdin", host)
	if out := d.must("push", "-q", private); strings.TrimSpace(out) != private {
		t.Errorf("push -q after login: %q", out)
	}
}

// TestImportHistoryPrune: a rootfs tarball (from a file and from stdin)
// becomes a runnable image with --change applied; history shows the
// import; image prune removes the unnamed one; system df counts images.
func TestImportHistoryPrune(t *testing.T) {
	reg := startRegistry(t) // only for the busybox rootfs
	d := startDaemon(t)
	tarball := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	if err := os.WriteFile(tarball, reg.image.Layer.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(d.must("import", "-c", `CMD ["echo", "imported"]`, "-c", "ENV GREETING=hello", "-m", "from the test", tarball, "example.com/imp:v1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q, want the image id", id)
	}
	if out := d.must("run", "--rm", "example.com/imp:v1"); out != "imported\n" {
		t.Errorf("run of the imported image: %q", out)
	}
	if out := d.must("run", "--rm", "example.com/imp:v1", "sh", "-c", "echo $GREETING"); out != "hello\n" {
		t.Errorf("ENV change: %q", out)
	}
	hist := d.must("history", "example.com/imp:v1")
	lines := strings.Split(strings.TrimSpace(hist), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "IMAGE") || !strings.Contains(lines[0], "CREATED BY") ||
		!strings.HasPrefix(lines[1], strings.TrimPrefix(id, "sha256:")[:12]) || !strings.Contains(lines[1], "from the test") {
		t.Errorf("history: %q", hist)
	}
	if out := d.must("history", "-q", "--no-trunc", "example.com/imp:v1"); strings.TrimSpace(out) != id {
		t.Errorf("history -q --no-trunc: %q", out)
	}
	d.must("pull", "-q", reg.Busybox)
	if out := d.must("history", reg.Busybox); !strings.Contains(out, "<missing>") && len(strings.Split(strings.TrimSpace(out), "\n")) < 2 {
		t.Errorf("history of the pulled image: %q", out)
	}

	// Unnamed import from stdin: dangling, pruned.
	dangling := strings.TrimSpace(d.mustIn(reg.image.Layer.Data, "import", "-"))
	if dangling == id {
		t.Errorf("two imports with different configs got the same id %s", id)
	}
	if out := d.must("system", "df"); !regexp.MustCompile(`(?m)^Images\s+3\s+0\s+`).MatchString(out) {
		t.Errorf("system df: %q", out)
	}
	if r := d.runIn([]byte("n\n"), "image", "prune"); r.Code != 1 || !strings.Contains(r.Stderr, "cancelled") {
		t.Errorf("image prune answered no: %s", r)
	}
	out := d.must("image", "prune", "-f")
	if !strings.Contains(out, "Deleted Images:") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("image prune: %q", out)
	}
	if r := d.run("image", "inspect", dangling); r.Code == 0 {
		t.Errorf("the dangling image survived prune")
	}
	d.must("image", "inspect", id)
	if out := d.must("image", "prune", "-a", "-f"); !strings.Contains(out, "untagged: example.com/imp:v1") {
		t.Errorf("image prune -a: %q", out)
	}
	if out := d.must("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images after prune -a: %q", out)
	}
	assertNoBlobs(t, d)

	// A bad tarball: a clear error, nothing left.
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, []byte(strings.Repeat("not a tarball ", 100)), 0o644)
	if r := d.run("import", bad, "example.com/bad:v1"); r.Code != 1 {
		t.Errorf("import of a bad tarball: want exit 1: %s", r)
	}
	assertNoBlobs(t, d)
}
