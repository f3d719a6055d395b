package images

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// progressLog records progress messages.
type progressLog struct {
	mu  sync.Mutex
	all []Progress
}

func (p *progressLog) add(m Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, m)
}

// has reports whether a message for id with status was seen.
func (p *progressLog) has(id, status string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.all {
		if m.ID == id && m.Status == status {
			return true
		}
	}
	return false
}

func TestChainIDs(t *testing.T) {
	a := digest.FromString("a")
	b := digest.FromString("b")
	got := chainIDs([]digest.Digest{a, b})
	want := []string{a.String(), digest.FromString(a.String() + " " + b.String()).String()}
	if !equal(got, want) {
		t.Fatalf("chainIDs = %v, want %v", got, want)
	}
	if len(chainIDs(nil)) != 0 {
		t.Fatal("chainIDs(nil) not empty")
	}
}

func TestIsIDLike(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"abc123", true}, {"sha256:abc", true}, {"busybox", false}, {"", false}, {"sha256:", false},
		{strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), false}, {"ABC", false},
	} {
		if _, got := isIDLike(tt.in); got != tt.want {
			t.Errorf("isIDLike(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestPullResolveRemove pulls a busybox and a multi-layer image from a real
// registry with each snapshot driver, looks them up every way, mounts the
// unpacked layers, and removes them until nothing is left.
func TestPullResolveRemove(t *testing.T) {
	reg := remotetest.Start(t)
	bb := busybox(t)
	bb.push(t, reg, "skiff/busybox", "latest")
	ml := multiLayer(t, "m1")
	ml.push(t, reg, "skiff/multi", "v1")
	bbName := reg.Domain + "/skiff/busybox:latest"
	mlName := reg.Domain + "/skiff/multi:v1"

	for _, driver := range []string{snapshot.Overlay, snapshot.Native} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, driver)
			var pl progressLog
			img, err := e.svc.Pull(ctx, "default", reg.Domain+"/skiff/busybox", "", nil, pl.add)
			if err != nil {
				t.Fatal(err)
			}
			layer := bb.layers[0].desc.Digest.String()
			for _, st := range []string{"downloading", "done", "extracting", "extracted"} {
				if !pl.has(layer, st) {
					t.Errorf("no %q progress for the layer: %+v", st, pl.all)
				}
			}
			if !pl.has("", "resolving") {
				t.Error("no resolving progress")
			}
			if img.Name != bbName || img.ID != bb.id() || img.Target.Digest != bb.manifest.desc.Digest {
				t.Errorf("pulled %+v", img)
			}
			if img.ChainID != bb.chainIDs()[0] || len(img.Layers) != 1 || len(img.DiffIDs) != 1 || img.UnpackedSize <= 0 || img.Size <= bb.layers[0].desc.Size {
				t.Errorf("pulled image: chain %s layers %v diffIDs %v unpacked %d size %d", img.ChainID, img.Layers, img.DiffIDs, img.UnpackedSize, img.Size)
			}
			if len(img.ConfigJSON) == 0 || len(img.ManifestJSON) == 0 || img.OS != "linux" || img.Recorded.IsZero() {
				t.Errorf("pulled image lacks config, manifest, os or recorded time: %+v", img)
			}

			// Every way of naming it.
			for _, n := range []string{bbName, reg.Domain + "/skiff/busybox", bb.id().String(), bb.id().Encoded()[:12], "sha256:" + bb.id().Encoded()[:6],
				reg.Domain + "/skiff/busybox@" + bb.manifest.desc.Digest.String()} {
				got, err := e.svc.Get(ctx, "default", n)
				if err != nil || got.Name != bbName {
					t.Errorf("Get(%q) = %q, %v", n, got.Name, err)
				}
			}
			if _, err := e.svc.Get(ctx, "other", bbName); !errdefs.IsNotFound(err) {
				t.Errorf("Get in another namespace = %v, want not found", err)
			}

			// Multi-layer image: whiteouts, opaque directories, chain IDs.
			pl = progressLog{}
			if _, err := e.svc.Pull(ctx, "default", mlName, "", nil, pl.add); err != nil {
				t.Fatal(err)
			}
			res, err := e.svc.Resolve(ctx, "default", mlName)
			if err != nil {
				t.Fatal(err)
			}
			if res.ChainID != ml.chainIDs()[2] || res.ID != ml.id() || res.Config.Config.Labels["test"] != "m1" {
				t.Errorf("Resolve = %+v", res)
			}
			files := e.viewFiles(t, res.ChainID, "a/file1", "a/file2", "b/x", "b/y", "c/z", "etc/label")
			want := map[string]string{"a/file2": "two v2", "b/y": "y", "c/z": "z", "etc/label": "m1"}
			if len(files) != len(want) {
				t.Errorf("view of %s has %v, want %v", res.ChainID, files, want)
			}
			for k, v := range want {
				if files[k] != v {
					t.Errorf("view of %s: %s = %q, want %q", res.ChainID, k, files[k], v)
				}
			}
			list, err := e.svc.List(ctx, "default")
			if err != nil || len(list) != 2 || list[0].Name > list[1].Name {
				t.Fatalf("List = %+v, %v", list, err)
			}

			// Again, and in another namespace: everything exists.
			pl = progressLog{}
			if _, err := e.svc.Pull(ctx, "other", bbName, "", nil, pl.add); err != nil {
				t.Fatal(err)
			}
			if !pl.has(layer, "exists") || pl.has(layer, "extracting") {
				t.Errorf("second pull did not find the layer: %+v", pl.all)
			}
			e.checkState(t, map[string][]*testImage{"default": {bb, ml}, "other": {bb}})

			// Removing: the other namespace keeps busybox's content.
			rr, err := e.svc.Remove(ctx, "default", "sha256:"+bb.id().Encoded()[:8], false)
			if err != nil {
				t.Fatal(err)
			}
			if len(rr.Untagged) != 1 || rr.Untagged[0] != bbName || len(rr.Deleted) != 0 {
				t.Errorf("Remove = %+v", rr)
			}
			e.checkState(t, map[string][]*testImage{"default": {ml}, "other": {bb}})
			rr, err = e.svc.Remove(ctx, "other", bbName, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(rr.Deleted) != 3 {
				t.Errorf("Remove deleted %v, want manifest, config and layer", rr.Deleted)
			}
			if _, err := e.svc.Remove(ctx, "default", mlName, false); err != nil {
				t.Fatal(err)
			}
			e.checkState(t, nil)
			_, err = e.svc.Get(ctx, "default", mlName)
			if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "pull it first") {
				t.Errorf("Get after remove = %v", err)
			}
			_, err = e.svc.Resolve(ctx, "default", "nosuch")
			if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `"docker.io/library/nosuch:latest"`) {
				t.Errorf("Resolve(nosuch) = %v", err)
			}
			for _, bad := range []string{"Upper", "a b", "x@sha256:12"} {
				if _, err := e.svc.Get(ctx, "default", bad); !errdefs.IsInvalidArgument(err) {
					t.Errorf("Get(%q) = %v, want invalid argument", bad, err)
				}
				if _, err := e.svc.Pull(ctx, "default", bad, "", nil, nil); !errdefs.IsInvalidArgument(err) {
					t.Errorf("Pull(%q) = %v, want invalid argument", bad, err)
				}
			}
		})
	}
}

// TestRemoveRules checks docker's rules for rmi: images used by
// containers, ids with several names, force, and tags.
func TestRemoveRules(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	ml := multiLayer(t, "rules")
	ml.push(t, reg, "skiff/multi", "v1")
	name := reg.Domain + "/skiff/multi:v1"
	e := newEnv(t, "")
	if _, err := e.svc.Pull(ctx, "default", name, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	tagged, err := e.svc.Tag(ctx, "default", name, "example.com/other:2")
	if err != nil || tagged.Name != "example.com/other:2" || tagged.ID != ml.id() {
		t.Fatalf("Tag = %+v, %v", tagged, err)
	}
	if _, err := e.svc.Tag(ctx, "default", name, "x@"+ml.id().String()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Tag with a digest = %v", err)
	}
	if _, err := e.svc.Tag(ctx, "default", "nosuch", "x:1"); !errdefs.IsNotFound(err) {
		t.Errorf("Tag of nosuch = %v", err)
	}
	// By id with two names: refused without force.
	_, err = e.svc.Remove(ctx, "default", ml.id().Encoded()[:10], false)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "example.com/other:2") {
		t.Errorf("Remove by id of a twice-named image = %v", err)
	}
	// A container uses the image.
	res, err := e.svc.Resolve(ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	key := "ctr/default/web1"
	if _, err := e.snap.Prepare(ctx, key, res.ChainID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateContainer("default", metadata.Container{ID: "web1", Name: "web", Image: name, SnapshotKey: key}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Remove(ctx, "default", name, false)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "web") {
		t.Errorf("Remove of an image in use = %v", err)
	}
	// The other name is not used by a container.
	rr, err := e.svc.Remove(ctx, "default", "example.com/other:2", false)
	if err != nil || len(rr.Deleted) != 0 {
		t.Errorf("Remove other name = %+v, %v", rr, err)
	}
	// Force: untagged and the content freed, but the container's
	// snapshot and its parents stay.
	rr, err = e.svc.Remove(ctx, "default", ml.id().String(), true)
	if err != nil || len(rr.Untagged) != 1 {
		t.Fatalf("forced Remove = %+v, %v", rr, err)
	}
	if len(e.blobs(t)) != 0 {
		t.Errorf("blobs left: %v", e.blobs(t))
	}
	snaps := e.snapshots(t)
	if len(snaps) != 4 || snaps[0] != "active "+key {
		t.Errorf("snapshots after forced remove: %v", snaps)
	}
	if err := e.snap.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.GC(ctx); err != nil {
		t.Fatal(err)
	}
	e.checkState(t, nil)
}

// TestResolveUnpacksMissing removes an image's snapshots behind its back:
// Resolve unpacks them again.
func TestResolveUnpacksMissing(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	ml := multiLayer(t, "again")
	ml.push(t, reg, "skiff/multi", "v1")
	e := newEnv(t, "")
	name := reg.Domain + "/skiff/multi:v1"
	if _, err := e.svc.Pull(ctx, "default", name, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	chains := ml.chainIDs()
	for i := len(chains) - 1; i >= 1; i-- {
		if err := e.snap.Remove(ctx, chains[i]); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.svc.Resolve(ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.viewFiles(t, res.ChainID, "c/z"); got["c/z"] != "z" {
		t.Errorf("re-unpacked view: %v", got)
	}
	e.checkState(t, map[string][]*testImage{"default": {ml}})
}

// TestLoadSave saves pulled images and loads the archive into another
// root: same digests, unpacked, and saving again gives the same bytes.
func TestLoadSave(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	bb := busybox(t)
	bb.push(t, reg, "skiff/busybox", "1")
	ml := multiLayer(t, "ls")
	ml.push(t, reg, "skiff/multi", "v1")
	src := newEnv(t, "")
	for _, n := range []string{reg.Domain + "/skiff/busybox:1", reg.Domain + "/skiff/multi:v1"} {
		if _, err := src.svc.Pull(ctx, "default", n, "", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	var archive bytes.Buffer
	if err := src.svc.Save(ctx, "default", []string{reg.Domain + "/skiff/busybox:1", "sha256:" + ml.id().Encoded()[:12]}, &archive); err != nil {
		t.Fatal(err)
	}
	if err := src.svc.Save(ctx, "default", []string{"nosuch"}, &bytes.Buffer{}); !errdefs.IsNotFound(err) {
		t.Errorf("Save(nosuch) = %v", err)
	}

	dst := newEnv(t, snapshot.Native)
	imgs, err := dst.svc.Load(ctx, "default", bytes.NewReader(archive.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("Load = %+v", imgs)
	}
	byName := map[string]Image{}
	for _, img := range imgs {
		byName[img.Name] = img
	}
	if b := byName[reg.Domain+"/skiff/busybox:1"]; b.ID != bb.id() || b.Target.Digest != bb.manifest.desc.Digest || b.ChainID != bb.chainIDs()[0] {
		t.Errorf("loaded busybox: %+v", b)
	}
	if m := byName[reg.Domain+"/skiff/multi:v1"]; m.ID != ml.id() {
		t.Errorf("loaded multi: %+v", m)
	}
	res, err := dst.svc.Resolve(ctx, "default", reg.Domain+"/skiff/multi:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got := dst.viewFiles(t, res.ChainID, "a/file2", "b/x"); got["a/file2"] != "two v2" || len(got) != 1 {
		t.Errorf("loaded multi's view: %v", got)
	}
	dst.checkState(t, map[string][]*testImage{"default": {bb, ml}})
	var again bytes.Buffer
	if err := dst.svc.Save(ctx, "default", []string{reg.Domain + "/skiff/busybox:1", reg.Domain + "/skiff/multi:v1"}, &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), archive.Bytes()) {
		t.Error("saving the loaded images gives another archive")
	}
	// Loading the same archive twice is fine.
	if _, err := dst.svc.Load(ctx, "default", bytes.NewReader(archive.Bytes())); err != nil {
		t.Fatal(err)
	}
	dst.checkState(t, map[string][]*testImage{"default": {bb, ml}})

	// Bad archives leave nothing.
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("this is not a tar")},
		{"truncated", archive.Bytes()[:archive.Len()/2]},
		{"empty", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			if _, err := e.svc.Load(ctx, "default", bytes.NewReader(tt.data)); err == nil {
				t.Fatal("Load succeeded")
			}
			e.checkState(t, nil)
		})
	}
}

// TestLoadLyingDiffID loads an image whose config gives a wrong diff ID for
// a layer: refused, and no snapshot named by the false chain ID remains.
func TestLoadLyingDiffID(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	honest := multiLayer(t, "honest")
	lie := []digest.Digest{honest.diffIDs[0], digest.FromString("not the layer"), honest.diffIDs[2]}
	liar := makeImage(t, [][]entry{
		{{"a/", ""}, {"a/file1", "one"}, {"a/file2", "two"}, {"b/", ""}, {"b/x", "x"}, {"etc/", ""}, {"etc/label", "honest"}},
		{{"evil", "evil"}},
		{{"c/", ""}, {"c/z", "z"}},
	}, "liar", lie)
	liar.push(t, reg, "skiff/liar", "1")
	e := newEnv(t, "")
	_, err := e.svc.Pull(ctx, "default", reg.Domain+"/skiff/liar:1", "", nil, nil)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "diff ID") {
		t.Fatalf("Pull of a lying image = %v", err)
	}
	e.checkState(t, nil)
}

// TestConcurrentPulls pulls one image many times at once, in two
// namespaces.
func TestConcurrentPulls(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	ml := multiLayer(t, "conc")
	ml.push(t, reg, "skiff/multi", "v1")
	bb := busybox(t)
	bb.push(t, reg, "skiff/busybox", "latest")
	e := newEnv(t, "")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		ns := []string{"default", "k8s.io"}[i%2]
		ref := []string{reg.Domain + "/skiff/multi:v1", reg.Domain + "/skiff/busybox"}[i/2%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.svc.Pull(ctx, ns, ref, "", nil, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.svc.GC(ctx); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e.checkState(t, map[string][]*testImage{"default": {bb, ml}, "k8s.io": {bb, ml}})
	for _, ns := range []string{"default", "k8s.io"} {
		res, err := e.svc.Resolve(ctx, ns, reg.Domain+"/skiff/multi:v1")
		if err != nil {
			t.Fatal(err)
		}
		if got := e.viewFiles(t, res.ChainID, "b/y"); got["b/y"] != "y" {
			t.Errorf("view: %v", got)
		}
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("New(Config{}) = %v", err)
	}
}

// TestPullPlatform pulls two platforms of a multi-platform index into two
// namespaces: each records the index and remembers its platform; saving
// one writes its manifest (the other platform's blobs are not there).
func TestPullPlatform(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	host := multiLayer(t, "host")
	other := makeImage(t, [][]entry{{{"s390x", "yes"}}}, "s390x", nil)
	var cfg map[string]any
	json.Unmarshal(other.config.data, &cfg)
	cfg["architecture"] = "s390x"
	cdata, _ := json.Marshal(cfg)
	other.config = newBlob(ocispec.MediaTypeImageConfig, cdata)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: other.config.desc, Layers: []ocispec.Descriptor{other.layers[0].desc}}
	m.SchemaVersion = 2
	mdata, _ := json.Marshal(m)
	other.manifest = newBlob(ocispec.MediaTypeImageManifest, mdata)
	host.push(t, reg, "skiff/multi", "host")
	other.push(t, reg, "skiff/multi", "other")
	withPlatform := func(img *testImage, arch string) ocispec.Descriptor {
		d := img.manifest.desc
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		return d
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{withPlatform(other, "s390x"), withPlatform(host, runtime.GOARCH)}}
	idx.SchemaVersion = 2
	idata, _ := json.Marshal(idx)
	index := newBlob(ocispec.MediaTypeImageIndex, idata)
	if err := reg.PushManifest(ctx, "skiff/multi", "both", index.desc, index.data); err != nil {
		t.Fatal(err)
	}
	name := reg.Domain + "/skiff/multi:both"
	e := newEnv(t, "")
	a, err := e.svc.Pull(ctx, "default", name, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.Pull(ctx, "s390x", name, "linux/s390x", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Target.Digest != index.desc.Digest || b.Target.Digest != index.desc.Digest || a.ID != host.id() || b.ID != other.id() || b.Architecture != "s390x" {
		t.Fatalf("pulled %+v and %+v", a, b)
	}
	if got, err := e.svc.Get(ctx, "s390x", name); err != nil || got.ID != other.id() {
		t.Errorf("Get in s390x = %s, %v", got.ID, err)
	}
	if _, err := e.svc.Pull(ctx, "default", name, "linux/nosuch", nil, nil); !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
		t.Errorf("pull of a missing platform = %v", err)
	}
	var archive bytes.Buffer
	if err := e.svc.Save(ctx, "s390x", []string{name}, &archive); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Remove(ctx, "default", name, false); err != nil {
		t.Fatal(err)
	}
	// The index stays (it is the image's target), the host's manifest
	// does not.
	other.extra = []blob{index}
	e.checkState(t, map[string][]*testImage{"s390x": {other}, "default": nil})
	dst := newEnv(t, "")
	imgs, err := dst.svc.Load(ctx, "default", &archive)
	if err != nil || len(imgs) != 1 || imgs[0].ID != other.id() || imgs[0].Target.Digest != other.manifest.desc.Digest {
		t.Fatalf("Load = %+v, %v", imgs, err)
	}
}

// TestLeasesAndStaleState: GC keeps what any lease names; New removes the
// leases and temporary snapshots an interrupted pull left.
func TestLeasesAndStaleState(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	ml := multiLayer(t, "lease")
	ml.push(t, reg, "skiff/multi", "v1")
	e := newEnv(t, "")
	name := reg.Domain + "/skiff/multi:v1"
	img, err := e.svc.Pull(ctx, "default", name, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign := metadata.Lease{ID: "someone-else", Resources: []metadata.LeaseResource{
		{Type: "content", ID: ml.layers[0].desc.Digest.String()},
		{Type: "snapshots/" + e.snap.Driver(), ID: img.ChainID},
	}}
	if _, err := e.db.CreateLease("k8s.io", foreign); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Remove(ctx, "default", name, false); err != nil {
		t.Fatal(err)
	}
	if got := e.blobs(t); len(got) != 1 || got[0] != ml.layers[0].desc.Digest.String() {
		t.Errorf("blobs kept by the lease: %v", got)
	}
	if got := e.snapshots(t); len(got) != 3 {
		t.Errorf("snapshots kept by the lease (and their parents): %v", got)
	}
	if err := e.db.DeleteLease("k8s.io", foreign.ID); err != nil {
		t.Fatal(err)
	}

	// What a killed skiffd leaves in the middle of a pull.
	if _, err := e.db.CreateLease("default", metadata.Lease{ID: "images-pull-dead", Labels: map[string]string{labelLeaseOwner: "pull"},
		Resources: []metadata.LeaseResource{{Type: "content", ID: ml.config.desc.Digest.String()}}}); err != nil {
		t.Fatal(err)
	}
	mounts, err := e.snap.Prepare(ctx, extractPrefix+"dead/"+ml.chainIDs()[1], ml.chainIDs()[0])
	if err != nil {
		t.Fatal(err)
	}
	dir, _, _ := snapshot.WritableDir(mounts)
	if err := os.WriteFile(filepath.Join(dir, "half"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{DB: e.db, Content: e.store, Snapshotter: e.snap})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.GC(ctx); err != nil {
		t.Fatal(err)
	}
	e.checkState(t, nil)
}
