package engine

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/skiff-containers/skiff/internal/imagebuild"
	"golang.org/x/sys/unix"
)

// TestLoadSaveRmi: the built-in image loads without a registry, runs,
// saves to an archive that loads again with the same id; an image in use
// is not removed without -f.
func TestLoadSaveRmi(t *testing.T) {
	d := startDaemon(t)
	img, err := imagebuild.Build(imagebuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "busybox.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		t.Fatal(err)
	}
	out := d.must("load", "-i", archive)
	if !strings.Contains(out, "Loaded image: "+imagebuild.DefaultName) {
		t.Errorf("load output: %q", out)
	}
	if out := d.must("run", "--rm", imagebuild.DefaultName, "echo", "ok"); out != "ok\n" {
		t.Errorf("run of the loaded image: %q", out)
	}
	id := strings.TrimSpace(d.must("images", "-q", "--no-trunc"))
	if id != img.Config.Descriptor.Digest.String() {
		t.Errorf("images -q --no-trunc = %q, want %s", id, img.Config.Descriptor.Digest)
	}

	saved := filepath.Join(dir, "saved.tar")
	d.must("save", "-o", saved, imagebuild.DefaultName)
	cid := strings.TrimSpace(d.must("create", imagebuild.DefaultName, "true"))
	r := d.run("rmi", imagebuild.DefaultName)
	if r.Code == 0 || !strings.Contains(r.Stderr, cid[:12]) {
		t.Errorf("rmi of an image in use: want a refusal naming container %s: %s", cid[:12], r)
	}
	d.must("rm", cid)
	d.must("rmi", imagebuild.DefaultName)
	if out := d.must("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images after rmi: %q", out)
	}
	assertNoBlobs(t, d)

	// The saved archive loads into a fresh daemon with the same id, and
	// skopeo (an OCI tool) reads it too.
	d2 := startDaemon(t)
	d2.must("load", "-i", saved)
	if id2 := strings.TrimSpace(d2.must("images", "-q", "--no-trunc")); id2 != id {
		t.Errorf("reloaded image id %q, want %q", id2, id)
	}
	if out, err := runCmd("skopeo", "inspect", "--raw", "docker-archive:"+saved); err != nil {
		t.Errorf("skopeo cannot read the saved archive as docker-archive: %v\n%s", err, out)
	}
}

// assertNoBlobs checks that the content store and the snapshotter of d
// hold nothing.
func assertNoBlobs(t *testing.T, d *daemon) {
	t.Helper()
	blobs, _ := filepath.Glob(filepath.Join(d.root, "content", "blobs", "sha256", "*"))
	if len(blobs) > 0 {
		t.Errorf("content store keeps %d blobs that no image uses: %v", len(blobs), blobs)
	}
	snaps, _ := filepath.Glob(filepath.Join(d.root, "snapshots", "snapshots", "*"))
	if len(snaps) > 0 {
		t.Errorf("snapshotter keeps %d snapshots that no image uses: %v", len(snaps), snaps)
	}
}

// faultyProxy stands in front of the registry and misbehaves on demand.
type faultyProxy struct {
	target *url.URL
	mode   atomic.Value // string
	user   string
	pass   string
}

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode, _ := p.mode.Load().(string)
	if p.user != "" {
		u, pw, ok := r.BasicAuth()
		if !ok || u != p.user || pw != p.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="skiff-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	}
	isBlob := strings.Contains(r.URL.Path, "/blobs/sha256:")
	resp, err := http.DefaultTransport.RoundTrip(p.outgoing(r))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if isBlob && r.Method == http.MethodGet && len(body) > 100 {
		switch mode {
		case "corrupt": // same length, different bytes
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0xff
		case "truncate": // the connection drops halfway
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(resp.StatusCode)
			w.Write(body[:len(body)/2])
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

func (p *faultyProxy) outgoing(r *http.Request) *http.Request {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = p.target.Host
	out.Header.Del("Authorization")
	return out
}

// TestBadPulls: a registry that is down, slow, corrupt, truncating, or
// asking for credentials; each gives one clear error and leaves no image,
// blob or snapshot behind.
func TestBadPulls(t *testing.T) {
	reg := startRegistry(t)
	target, _ := url.Parse(reg.URL)
	proxy := &faultyProxy{target: target}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	proxied := strings.TrimPrefix(srv.URL, "http://") + "/skiff/busybox:latest"
	d := startDaemon(t)

	// A port where nothing listens.
	down := httptest.NewServer(http.NotFoundHandler())
	downRef := strings.TrimPrefix(down.URL, "http://") + "/skiff/busybox:latest"
	down.Close()

	for _, tc := range []struct {
		mode, ref, want string
	}{
		{"", downRef, "connection refused"},
		{"", reg.Domain + "/skiff/nothere:latest", "not found"},
		{"corrupt", proxied, "digest"},
		{"truncate", proxied, ""},
	} {
		t.Run(tc.mode+"/"+tc.ref, func(t *testing.T) {
			proxy.mode.Store(tc.mode)
			r := d.run("pull", tc.ref)
			if r.Code == 0 {
				t.Fatalf("pull succeeded: %s", r)
			}
			if tc.want != "" && !strings.Contains(strings.ToLower(r.Stderr), tc.want) {
				t.Errorf("error does not say %q: %s", tc.want, r)
			}
			if strings.Count(strings.TrimSpace(r.Stderr), "\n") > 3 {
				t.Errorf("want one clear error, got: %s", r)
			}
			if out := d.must("images", "-q"); strings.TrimSpace(out) != "" {
				t.Errorf("a failed pull left an image: %q", out)
			}
			assertNoBlobs(t, d)
		})
	}
	proxy.mode.Store("")
	d.must("pull", "-q", proxied)
	d.must("rmi", proxied)

	// 401, then skiff login, then the pull works.
	proxy.user, proxy.pass = "alice", "s3cret"
	home := t.TempDir()
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	r := d.run("pull", proxied)
	if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "unauthorized") && !strings.Contains(r.Stderr, "401") && !strings.Contains(strings.ToLower(r.Stderr), "authentication") {
		t.Errorf("pull without credentials: want an authentication error: %s", r)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if r := d.runIn([]byte("wrong\n"), "login", "-u", "alice", "--password-stdin", host); r.Code != 1 {
		t.Errorf("login with a wrong password: want exit 1: %s", r)
	}
	d.mustIn([]byte("s3cret\n"), "login", "-u", "alice", "--password-stdin", host)
	cfg, err := os.ReadFile(filepath.Join(home, ".docker", "config.json"))
	if err != nil || !strings.Contains(string(cfg), base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))) {
		t.Errorf("login did not store the credentials in $DOCKER_CONFIG/config.json: %v\n%s", err, cfg)
	}
	d.must("pull", "-q", proxied)
	d.must("rmi", proxied)
	proxy.user = ""
}

func (d *daemon) mustIn(stdin []byte, args ...string) string {
	d.t.Helper()
	r := d.runIn(stdin, args...)
	if r.Code != 0 {
		d.t.Fatalf("%s", r)
	}
	return r.Stdout
}

// TestDiskFullPull: a root on a tiny tmpfs fills up mid-pull; the pull
// fails clearly and leaves nothing.
func TestDiskFullPull(t *testing.T) {
	reg := startRegistry(t)
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=1200k,mode=0700"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	d := startDaemon(t, "--root", filepath.Join(small, "root"))
	r := d.run("pull", reg.Busybox)
	if r.Code == 0 {
		t.Fatalf("pull into a 1.2 MB root succeeded: %s", r)
	}
	if !strings.Contains(strings.ToLower(r.Stderr), "no space left") {
		t.Errorf("error does not say the disk is full: %s", r)
	}
	if out := d.must("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("a failed pull left an image: %q", out)
	}
	d.root = filepath.Join(small, "root")
	assertNoBlobs(t, d)
}
