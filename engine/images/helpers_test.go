package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/remote"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/image/snapshot"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// env is an image service on its own temporary root.
type env struct {
	root  string
	db    *metadata.DB
	store *content.Store
	snap  *snapshot.Snapshotter
	svc   *Service
}

func testOptions() remote.Options {
	return remote.Options{
		MaxAttempts:           2,
		RetryBackoff:          10 * time.Millisecond,
		StallTimeout:          time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
	}
}

func newEnv(t *testing.T, driver string) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), driver, testOptions())
}

func newEnvAt(t *testing.T, root, driver string, ropts remote.Options) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (snapshots, overlay mounts)")
	}
	e := &env{root: root}
	var err error
	if e.store, err = content.Open(filepath.Join(root, "content")); err != nil {
		t.Fatal(err)
	}
	if e.snap, err = snapshot.New(filepath.Join(root, "snapshots"), snapshot.Options{Driver: driver}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.snap.Close() })
	if e.db, err = metadata.Open(filepath.Join(root, "meta.db"), metadata.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.svc, err = New(Config{DB: e.db, Content: e.store, Snapshotter: e.snap, Remote: ropts, Logger: log}); err != nil {
		t.Fatal(err)
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// blobs returns the digests in the content store, sorted.
func (e *env) blobs(t *testing.T) []string {
	t.Helper()
	var out []string
	if err := e.store.Walk(context.Background(), func(i content.Info) error {
		out = append(out, i.Digest.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// snapshots returns "kind name" of every snapshot, sorted.
func (e *env) snapshots(t *testing.T) []string {
	t.Helper()
	var out []string
	if err := e.snap.Walk(context.Background(), func(_ context.Context, i snapshot.Info) error {
		out = append(out, i.Kind.String()+" "+i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// checkState fails unless the stores hold exactly the images of
// namespace ns named by names (and nothing of any other image): their
// blobs, the committed snapshots of their chains, no lease, no ingest.
func (e *env) checkState(t *testing.T, want map[string][]*testImage) {
	t.Helper()
	ctx := context.Background()
	wantBlobs := map[string]bool{}
	wantSnaps := map[string]bool{}
	for ns, imgs := range want {
		recs, err := e.db.ListImages(ns, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(imgs) {
			var names []string
			for _, r := range recs {
				names = append(names, r.Name)
			}
			t.Errorf("namespace %s has images %v, want %d", ns, names, len(imgs))
		}
		for _, img := range imgs {
			for _, b := range img.all() {
				wantBlobs[b.desc.Digest.String()] = true
			}
			for _, c := range img.chainIDs() {
				wantSnaps["committed "+c] = true
			}
		}
	}
	nss, err := e.db.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		if _, ok := want[ns]; !ok {
			if recs, _ := e.db.ListImages(ns, nil); len(recs) > 0 {
				t.Errorf("namespace %s has %d images, want none", ns, len(recs))
			}
		}
		if ls, _ := e.db.ListLeases(ns, nil); len(ls) > 0 {
			t.Errorf("namespace %s has leases left: %+v", ns, ls)
		}
	}
	if got, w := e.blobs(t), keys(wantBlobs); !equal(got, w) {
		t.Errorf("content store holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	if got, w := e.snapshots(t), keys(wantSnaps); !equal(got, w) {
		t.Errorf("snapshots:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	if ing, err := e.store.Ingests(ctx); err != nil || len(ing) > 0 {
		t.Errorf("ingests left: %v %v", ing, err)
	}
}

func keys(m map[string]bool) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// blob is a blob of a test image.
type blob struct {
	desc ocispec.Descriptor
	data []byte
}

func newBlob(mt string, data []byte) blob {
	return blob{ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}, data}
}

// testImage is an image made by a test.
type testImage struct {
	manifest, config blob
	layers           []blob
	diffIDs          []digest.Digest
	extra            []blob // an index naming the image, for checkState
}

func (img *testImage) all() []blob {
	return append(append([]blob{img.manifest, img.config}, img.layers...), img.extra...)
}

func (img *testImage) chainIDs() []string { return chainIDs(img.diffIDs) }

func (img *testImage) id() digest.Digest { return img.config.desc.Digest }

// push pushes the image into repo of reg under tag.
func (img *testImage) push(t *testing.T, reg *remotetest.Registry, repo, tag string) {
	t.Helper()
	ctx := context.Background()
	for _, b := range append([]blob{img.config}, img.layers...) {
		if err := reg.PushBlob(ctx, repo, b.desc, b.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.PushManifest(ctx, repo, tag, img.manifest.desc, img.manifest.data); err != nil {
		t.Fatal(err)
	}
}

// busybox returns the image imagebuild makes from the host's busybox.
func busybox(t *testing.T) *testImage {
	t.Helper()
	if err := imagebuild.Available(); err != nil {
		t.Skip(err)
	}
	b, err := imagebuild.Build(imagebuild.Options{Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	return &testImage{
		manifest: blob{b.Manifest.Descriptor, b.Manifest.Data},
		config:   blob{b.Config.Descriptor, b.Config.Data},
		layers:   []blob{{b.Layer.Descriptor, b.Layer.Data}},
		diffIDs:  []digest.Digest{b.DiffID},
	}
}

// entry is a file of a test layer: a directory if name ends in "/", else a
// regular file with body.
type entry struct{ name, body string }

// makeLayer returns a gzip-compressed layer tar and its diff ID.
func makeLayer(t *testing.T, entries []entry) (blob, digest.Digest) {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	mt := time.Unix(1700000000, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, ModTime: mt, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	return newBlob(ocispec.MediaTypeImageLayerGzip, gz.Bytes()), digest.FromBytes(raw.Bytes())
}

// makeImage builds an OCI image of the given layers. diffIDs, if not nil,
// replaces the true diff IDs in the config (to make a lying image).
func makeImage(t *testing.T, layers [][]entry, label string, lie []digest.Digest) *testImage {
	t.Helper()
	img := &testImage{}
	for _, es := range layers {
		b, d := makeLayer(t, es)
		img.layers = append(img.layers, b)
		img.diffIDs = append(img.diffIDs, d)
	}
	created := time.Unix(1700000000, 0).UTC()
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Cmd: []string{"sh"}, Labels: map[string]string{"test": label}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: img.diffIDs},
	}
	if lie != nil {
		cfg.RootFS.DiffIDs = lie
		img.diffIDs = lie
	}
	cdata, _ := json.Marshal(cfg)
	img.config = newBlob(ocispec.MediaTypeImageConfig, cdata)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: img.config.desc}
	m.SchemaVersion = 2
	for _, l := range img.layers {
		m.Layers = append(m.Layers, l.desc)
	}
	mdata, _ := json.Marshal(m)
	img.manifest = newBlob(ocispec.MediaTypeImageManifest, mdata)
	return img
}

// multiLayer is a three-layer image with a whiteout and an opaque
// directory.
func multiLayer(t *testing.T, label string) *testImage {
	return makeImage(t, [][]entry{
		{{"a/", ""}, {"a/file1", "one"}, {"a/file2", "two"}, {"b/", ""}, {"b/x", "x"}, {"etc/", ""}, {"etc/label", label}},
		{{"a/", ""}, {"a/.wh.file1", ""}, {"b/", ""}, {"b/.wh..wh..opq", ""}, {"b/y", "y"}, {"a/file2", "two v2"}},
		{{"c/", ""}, {"c/z", "z"}},
	}, label, nil)
}

// proxy is a registry in front of a real one whose answers a test can
// spoil.
type proxy struct {
	*httptest.Server
	Domain string
}

// newProxy forwards to reg; hook, if it returns true, has answered the
// request itself.
func newProxy(t *testing.T, reg *remotetest.Registry, hook func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool) *proxy {
	t.Helper()
	u, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook != nil && hook(w, r, rp) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &proxy{Server: srv, Domain: strings.TrimPrefix(srv.URL, "http://")}
}

// fetchUpstream gets r's answer from upstream.
func fetchUpstream(r *http.Request, upstream http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	upstream.ServeHTTP(rec, r.Clone(r.Context()))
	return rec
}

// viewFile mounts a read-only view of chain and returns the content of
// path in it ("" and false if absent).
func (e *env) viewFiles(t *testing.T, chain string, paths ...string) map[string]string {
	t.Helper()
	ctx := context.Background()
	key := "test-view-" + randomHex(4)
	mounts, err := e.snap.View(ctx, key, chain)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.snap.Remove(ctx, key); err != nil {
			t.Error(err)
		}
	}()
	target := t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := snapshot.Unmount(target); err != nil {
			t.Error(err)
		}
	}()
	out := map[string]string{}
	for _, p := range paths {
		if b, err := os.ReadFile(filepath.Join(target, p)); err == nil {
			out[p] = string(b)
		} else if fi, err := os.Stat(filepath.Join(target, p)); err == nil {
			out[p] = "<" + fi.Mode().Type().String() + ">"
		}
	}
	return out
}
