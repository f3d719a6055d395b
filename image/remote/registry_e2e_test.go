package remote

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// TestPullFromDistributionRegistry pushes busybox images built from the
// host's /bin/busybox into a real CNCF distribution registry (OCI manifest,
// OCI index of two platforms, Docker schema 2) and pulls them back into a
// content store: the digests and the layer's busybox must be the host's.
func TestPullFromDistributionRegistry(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)

	host, err := imagebuild.Build(imagebuild.Options{Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	other, err := imagebuild.Build(imagebuild.Options{Architecture: "s390x"})
	if err != nil {
		t.Fatal(err)
	}
	const repo = "skiff/busybox"
	push := func(b imagebuild.Blob) {
		t.Helper()
		if err := reg.PushBlob(ctx, repo, b.Descriptor, b.Data); err != nil {
			t.Fatal(err)
		}
	}
	putManifest := func(ref string, desc ocispec.Descriptor, data []byte) {
		t.Helper()
		if err := reg.PushManifest(ctx, repo, ref, desc, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range []*imagebuild.Image{host, other} {
		push(img.Layer)
		push(img.Config)
		putManifest(img.Manifest.Descriptor.Digest.String(), img.Manifest.Descriptor, img.Manifest.Data)
	}
	putManifest("oci", host.Manifest.Descriptor, host.Manifest.Data)

	// An OCI index of both platforms.
	withPlatform := func(img *imagebuild.Image, arch string) ocispec.Descriptor {
		d := img.Manifest.Descriptor
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		return d
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{withPlatform(other, "s390x"), withPlatform(host, runtime.GOARCH)}}
	idx.SchemaVersion = 2
	idxData, _ := json.Marshal(idx)
	idxDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(idxData), Size: int64(len(idxData))}
	putManifest("multi", idxDesc, idxData)

	// The same blobs described by a Docker schema 2 manifest.
	dm := ocispec.Manifest{
		MediaType: MediaTypeDockerManifest,
		Config:    ocispec.Descriptor{MediaType: MediaTypeDockerConfig, Digest: host.Config.Descriptor.Digest, Size: host.Config.Descriptor.Size},
		Layers:    []ocispec.Descriptor{{MediaType: MediaTypeDockerLayerGzip, Digest: host.Layer.Descriptor.Digest, Size: host.Layer.Descriptor.Size}},
	}
	dm.SchemaVersion = 2
	dmData, _ := json.Marshal(dm)
	dmDesc := ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: digest.FromBytes(dmData), Size: int64(len(dmData))}
	putManifest("docker", dmDesc, dmData)

	for _, tt := range []struct {
		ref          string
		platform     string
		target       ocispec.Descriptor
		manifest     ocispec.Descriptor
		config       ocispec.Descriptor
		extraBlobs   []digest.Digest
		wantPlatform string
	}{
		{ref: "oci", target: host.Manifest.Descriptor, manifest: host.Manifest.Descriptor, config: host.Config.Descriptor},
		{ref: "docker", target: dmDesc, manifest: dmDesc, config: host.Config.Descriptor},
		{ref: "multi", target: idxDesc, manifest: host.Manifest.Descriptor, config: host.Config.Descriptor, extraBlobs: []digest.Digest{idxDesc.Digest}},
		{ref: "multi", platform: "linux/s390x", target: idxDesc, manifest: other.Manifest.Descriptor, config: other.Config.Descriptor, extraBlobs: []digest.Digest{idxDesc.Digest}},
		{ref: "@" + host.Manifest.Descriptor.Digest.String(), target: host.Manifest.Descriptor, manifest: host.Manifest.Descriptor, config: host.Config.Descriptor},
	} {
		t.Run(tt.ref+" "+tt.platform, func(t *testing.T) {
			ref := reg.Domain + "/" + repo
			if strings.HasPrefix(tt.ref, "@") {
				ref += tt.ref
			} else {
				ref += ":" + tt.ref
			}
			store, err := content.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var po PullOptions
			if tt.platform != "" {
				p, err := ParsePlatform(tt.platform)
				if err != nil {
					t.Fatal(err)
				}
				po.Platform = &p
			}
			img, err := NewResolver(Options{}).Pull(ctx, mustRef(t, ref), store, po)
			if err != nil {
				t.Fatal(err)
			}
			if img.Target.Digest != tt.target.Digest || img.Target.MediaType != tt.target.MediaType || img.Target.Size != tt.target.Size {
				t.Errorf("Target = %+v, want %+v", img.Target, tt.target)
			}
			if img.Manifest.Digest != tt.manifest.Digest || img.Config.Digest != tt.config.Digest {
				t.Errorf("Manifest %s Config %s, want %s %s", img.Manifest.Digest, img.Config.Digest, tt.manifest.Digest, tt.config.Digest)
			}
			if len(img.Layers) != 1 || img.Layers[0].Digest != host.Layer.Descriptor.Digest {
				t.Errorf("Layers = %+v", img.Layers)
			}
			if tt.platform == "" && img.Platform.Architecture != runtime.GOARCH {
				t.Errorf("Platform = %+v, want the host's", img.Platform)
			}
			assertStore(t, store, append([]digest.Digest{tt.manifest.Digest, tt.config.Digest, host.Layer.Descriptor.Digest}, tt.extraBlobs...)...)
			checkBusyboxLayer(t, store, img.Layers[0])
		})
	}

	for _, tt := range []struct{ ref, mention string }{
		{reg.Domain + "/" + repo + ":nope", "MANIFEST_UNKNOWN"},
		{reg.Domain + "/no/such/repo", "not found in registry " + reg.Domain},
		{reg.Domain + "/" + repo + "@" + digest.FromString("x").String(), "MANIFEST_UNKNOWN"},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			store, err := content.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewResolver(Options{}).Pull(ctx, mustRef(t, tt.ref), store, PullOptions{})
			if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("pull %s = %v, want ErrNotFound mentioning %s", tt.ref, err, tt.mention)
			}
			assertStore(t, store)
		})
	}
}

// checkBusyboxLayer reads the stored layer and checks that its bin/busybox
// is the host's.
func checkBusyboxLayer(t *testing.T, store *content.Store, desc ocispec.Descriptor) {
	t.Helper()
	want, err := os.ReadFile(imagebuild.DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := store.ReaderAt(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	zr, err := gzip.NewReader(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("layer has no bin/busybox: %v", err)
		}
		if strings.TrimPrefix(h.Name, "./") == "bin/busybox" && h.Typeflag == tar.TypeReg {
			got, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("the pulled layer's bin/busybox differs from the host's")
			}
			return
		}
	}
}
