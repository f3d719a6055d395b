package images

import (
	"archive/tar"
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
)

// TestPushPull: an image pulled from one repository is tagged for another
// and pushed (its blobs mounted); pulled into a fresh service it has the
// same digest. A name that is not local is a clear NotFound.
func TestPushPull(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	img := multiLayer(t, "push")
	img.push(t, reg, "skiff/src", "v1")
	e := newEnv(t, "")
	src := reg.Domain + "/skiff/src:v1"
	if _, err := e.svc.Pull(ctx, "default", src, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	dst := reg.Domain + "/skiff/dst:v2"
	if _, err := e.svc.Tag(ctx, "default", src, dst); err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	pushed, err := e.svc.Push(ctx, "default", dst, nil, func(p Progress) { statuses[p.ID] = p.Status })
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Target.Digest != img.manifest.desc.Digest {
		t.Errorf("pushed %s, want %s", pushed.Target.Digest, img.manifest.desc.Digest)
	}
	for _, l := range img.layers {
		if got := statuses[l.desc.Digest.String()]; got != "mounted" {
			t.Errorf("layer %s: status %q, want mounted", l.desc.Digest, got)
		}
	}
	if got := statuses[img.manifest.desc.Digest.String()]; got != "pushed" {
		t.Errorf("manifest status %q, want pushed", got)
	}
	fresh := newEnv(t, "")
	got, err := fresh.svc.Pull(ctx, "default", dst, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Target.Digest != pushed.Target.Digest || got.ID != img.id() {
		t.Errorf("pulled %s (id %s), want %s (id %s)", got.Target.Digest, got.ID, pushed.Target.Digest, img.id())
	}

	_, err = e.svc.Push(ctx, "default", reg.Domain+"/skiff/none:latest", nil, nil)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "skiff tag") {
		t.Errorf("push of a name not local = %v, want NotFound saying to tag", err)
	}
}

// tarOf makes an uncompressed tarball of entries.
func tarOf(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// TestImportHistoryPrune: tarballs (plain and zstd) become one-layer
// images with the changes applied; history lists the import; prune
// removes the dangling one, prune all the rest unless a container uses
// it; a bad tarball leaves nothing.
func TestImportHistoryPrune(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "")
	raw := tarOf(t, []entry{{"bin/", ""}, {"bin/hello", "#!/bin/sh\necho hi\n"}, {"etc/", ""}, {"etc/motd", "imported"}})
	var zbuf bytes.Buffer
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write(raw)
	zw.Close()

	named, err := e.svc.Import(ctx, "default", bytes.NewReader(raw), "example.com/imp:v1", []string{`CMD ["/bin/hello"]`, "ENV A=1 B=\"two words\"", "WORKDIR /srv", "EXPOSE 80"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if named.Name != "example.com/imp:v1" || len(named.Layers) != 1 {
		t.Fatalf("imported %+v", named)
	}
	if files := e.viewFiles(t, named.ChainID, "etc/motd"); files["etc/motd"] != "imported" {
		t.Errorf("unpacked files: %v", files)
	}
	r, err := e.svc.Resolve(ctx, "default", "example.com/imp:v1")
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config.Config
	if !reflect.DeepEqual(c.Cmd, []string{"/bin/hello"}) || !reflect.DeepEqual(c.Env, []string{"A=1", "B=two words"}) || c.WorkingDir != "/srv" {
		t.Errorf("config %+v", c)
	}
	if _, ok := c.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}

	dangling, err := e.svc.Import(ctx, "default", &zbuf, "", nil, "from zstd")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dangling.Name, "sha256:") || dangling.DiffIDs[0] != named.DiffIDs[0] {
		t.Errorf("dangling import %s with diff IDs %v, want an id name and %v", dangling.Name, dangling.DiffIDs, named.DiffIDs)
	}
	hist, err := e.svc.History(ctx, "default", dangling.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Comment != "from zstd" || hist[0].ID != dangling.ID.String() || hist[0].Size <= 0 {
		t.Errorf("history %+v", hist)
	}

	before := e.blobs(t)
	for _, bad := range [][]byte{[]byte("this is not a tarball at all, not even close, but long enough"), {}} {
		if _, err := e.svc.Import(ctx, "default", bytes.NewReader(bad), "example.com/bad:v1", nil, ""); err == nil {
			t.Errorf("import of %q succeeded", bad)
		}
	}
	if _, err := e.svc.Import(ctx, "default", bytes.NewReader(raw), "", []string{"RUN rm -rf /"}, ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("import with RUN = %v, want InvalidArgument", err)
	}
	if after := e.blobs(t); !equal(before, after) {
		t.Errorf("failed imports left blobs: %v, before %v", after, before)
	}

	du, err := e.svc.DiskUsage(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if du.Total != 2 || du.Active != 0 || du.Size <= 0 || du.Reclaimable != du.Size {
		t.Errorf("disk usage %+v", du)
	}

	res, err := e.svc.Prune(ctx, "default", false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Untagged, []string{dangling.Name}) || len(res.Deleted) == 0 {
		t.Errorf("prune: %+v", res)
	}
	// A container uses the named image: prune all keeps it.
	if _, err := e.db.CreateContainer("default", metadata.Container{ID: "c1", Image: named.Name, ImageID: named.ID.String()}); err != nil {
		t.Fatal(err)
	}
	if du, _ := e.svc.DiskUsage(ctx, "default"); du.Active != 1 || du.Reclaimable != 0 {
		t.Errorf("disk usage with a container: %+v", du)
	}
	if res, err := e.svc.Prune(ctx, "default", true); err != nil || len(res.Untagged) != 0 {
		t.Errorf("prune all with the image in use: %+v, %v", res, err)
	}
	if err := e.db.DeleteContainer("default", "c1"); err != nil {
		t.Fatal(err)
	}
	res, err = e.svc.Prune(ctx, "default", true)
	if err != nil || !reflect.DeepEqual(res.Untagged, []string{named.Name}) || res.SpaceReclaimed <= 0 {
		t.Errorf("prune all: %+v, %v", res, err)
	}
	if b := e.blobs(t); len(b) != 0 {
		t.Errorf("blobs left after prune all: %v", b)
	}
	if s := e.snapshots(t); len(s) != 0 {
		t.Errorf("snapshots left after prune all: %v", s)
	}
}

func TestParseChanges(t *testing.T) {
	for _, tt := range []struct {
		changes []string
		want    ocispec.ImageConfig
		err     bool
	}{
		{changes: []string{`CMD ["a", "b"]`}, want: ocispec.ImageConfig{Cmd: []string{"a", "b"}}},
		{changes: []string{`CMD echo hi`}, want: ocispec.ImageConfig{Cmd: []string{"/bin/sh", "-c", "echo hi"}}},
		{changes: []string{`entrypoint ["/init"]`}, want: ocispec.ImageConfig{Entrypoint: []string{"/init"}}},
		{changes: []string{`ENV A=1`, `ENV A=2 B="x y"`}, want: ocispec.ImageConfig{Env: []string{"A=2", "B=x y"}}},
		{changes: []string{`ENV PATH /usr/bin:/bin`}, want: ocispec.ImageConfig{Env: []string{"PATH=/usr/bin:/bin"}}},
		{changes: []string{`LABEL a=b "c d"=e`}, want: ocispec.ImageConfig{Labels: map[string]string{"a": "b", "c d": "e"}}},
		{changes: []string{`EXPOSE 80 53/udp`}, want: ocispec.ImageConfig{ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}}}},
		{changes: []string{`VOLUME ["/data", "/logs"]`}, want: ocispec.ImageConfig{Volumes: map[string]struct{}{"/data": {}, "/logs": {}}}},
		{changes: []string{`VOLUME /a /b`}, want: ocispec.ImageConfig{Volumes: map[string]struct{}{"/a": {}, "/b": {}}}},
		{changes: []string{`WORKDIR /srv`, `WORKDIR app`}, want: ocispec.ImageConfig{WorkingDir: "/srv/app"}},
		{changes: []string{`USER nobody:nogroup`, `STOPSIGNAL SIGINT`}, want: ocispec.ImageConfig{User: "nobody:nogroup", StopSignal: "SIGINT"}},
		{changes: []string{`RUN true`}, err: true},
		{changes: []string{`EXPOSE http`}, err: true},
		{changes: []string{`ENV`}, err: true},
		{changes: []string{`LABEL a="b`}, err: true},
		{changes: []string{`HEALTHCHECK NONE`}, err: true},
	} {
		got, err := ParseChanges(tt.changes)
		if (err != nil) != tt.err {
			t.Errorf("ParseChanges(%q) error %v, want error %v", tt.changes, err, tt.err)
			continue
		}
		if !tt.err && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseChanges(%q) = %+v, want %+v", tt.changes, got, tt.want)
		}
	}
}
