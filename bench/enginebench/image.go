package enginebench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// pushBig pushes a busybox image with n more layers of mib MiB of random
// data each (one file per layer) and returns the total compressed size.
func pushBig(ctx context.Context, reg *remotetest.Registry, repo, tag string, n, mib int) (int64, error) {
	base, err := imagebuild.Build(imagebuild.Options{Name: reg.Domain + "/" + repo + ":" + tag})
	if err != nil {
		return 0, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(base.Config.Data, &cfg); err != nil {
		return 0, err
	}
	manifest := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{base.Layer.Descriptor}}
	manifest.SchemaVersion = 2
	if err := reg.PushBlob(ctx, repo, base.Layer.Descriptor, base.Layer.Data); err != nil {
		return 0, err
	}
	total := base.Layer.Descriptor.Size
	for i := 0; i < n; i++ {
		gz, diffID, err := randomLayer(fmt.Sprintf("data/layer%02d/blob", i), mib<<20)
		if err != nil {
			return 0, err
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz), Size: int64(len(gz))}
		if err := reg.PushBlob(ctx, repo, desc, gz); err != nil {
			return 0, err
		}
		manifest.Layers = append(manifest.Layers, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		total += desc.Size
	}
	cfgData, err := json.Marshal(cfg)
	if err != nil {
		return 0, err
	}
	manifest.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgData), Size: int64(len(cfgData))}
	if err := reg.PushBlob(ctx, repo, manifest.Config, cfgData); err != nil {
		return 0, err
	}
	mData, err := json.Marshal(manifest)
	if err != nil {
		return 0, err
	}
	mDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mData), Size: int64(len(mData))}
	return total + manifest.Config.Size + mDesc.Size, reg.PushManifest(ctx, repo, tag, mDesc, mData)
}

// randomLayer is a gzip-compressed tar holding one file of size random
// bytes at name, and the digest of the uncompressed tar.
func randomLayer(name string, size int) ([]byte, digest.Digest, error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	dir := name[:len(name)-len("/blob")]
	for _, d := range []string{"data/", dir + "/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			return nil, "", err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(size)}); err != nil {
		return nil, "", err
	}
	if _, err := io.CopyN(tw, rand.Reader, int64(size)); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID := digest.FromBytes(tarBuf.Bytes())
	var gzBuf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gzBuf, gzip.BestSpeed)
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gzBuf.Bytes(), diffID, nil
}
