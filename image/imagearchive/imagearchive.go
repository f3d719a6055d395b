package imagearchive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/reference"
)

// Media types of the Docker image format that an archive may hold.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// AnnotationContainerdImageName is the index annotation with which
// containerd (and podman) name an image in an OCI archive.
const AnnotationContainerdImageName = "io.containerd.image.name"

const (
	// MaxMetadataSize bounds index.json, oci-layout, manifest.json,
	// repositories, and every manifest, index and config read while
	// checking an image.
	MaxMetadataSize = 4 << 20
	// maxSmallFile and maxSmallTotal bound the non-blob files kept in
	// memory until manifest.json says which of them are images' blobs.
	maxSmallFile  = 1 << 20
	maxSmallTotal = 32 << 20
	// maxDepth bounds nested indexes and symlink chains.
	maxDepth = 8
)

// Image is an image found in (or to be written to) an archive.
type Image struct {
	// Name is the normalised reference ("docker.io/library/busybox:latest"),
	// or empty if the archive does not name the image.
	Name string
	// Target is the image's manifest or index.
	Target ocispec.Descriptor
}

// entry is one non-directory entry of the archive being imported.
type entry struct {
	data   []byte             // kept in memory (metadata and small files)
	desc   ocispec.Descriptor // set once the bytes are in the store
	stored bool
	link   string // for a symlink: the archive name it aliases
}

type importer struct {
	store    *content.Store
	files    map[string]*entry
	memUsed  int64
	ingestID string
	nIngest  int
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errdefs.ErrInvalidArgument}, a...)...)
}

// cleanName checks an archive entry name: not absolute, no ".." component.
// It returns the name without "./" and trailing slashes ("" for the root).
func cleanName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", invalid("archive entry %q: absolute or empty name: refused", name)
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return "", invalid("archive entry %q: name contains \"..\": refused", name)
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/"), nil
}

func isMetadata(name string) bool {
	switch name {
	case ocispec.ImageIndexFile, ocispec.ImageLayoutFile, "manifest.json", "repositories":
		return true
	}
	return false
}

// ctxReader stops a copy when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Import reads an OCI archive or a docker save archive from r into store
// and returns the images it holds. See the package documentation.
func Import(ctx context.Context, r io.Reader, store *content.Store) ([]Image, error) {
	if store == nil {
		return nil, invalid("import: no content store")
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	im := &importer{store: store, files: map[string]*entry{}, ingestID: hex.EncodeToString(id[:])}
	if err := im.readTar(ctx, r); err != nil {
		return nil, err
	}
	if _, ok := im.files[ocispec.ImageIndexFile]; ok {
		return im.importOCI(ctx)
	}
	if _, ok := im.files["manifest.json"]; ok {
		return im.importDocker(ctx)
	}
	return nil, invalid("archive has neither index.json (OCI image layout) nor manifest.json (docker save): not an image archive")
}

func (im *importer) readTar(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(ctxReader{ctx, r})
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if len(im.files) == 0 {
				return invalid("archive is empty")
			}
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return invalid("reading archive: %v", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if name == "" {
			return invalid("archive entry %q: a non-directory names the archive root: refused", hdr.Name)
		}
		if _, dup := im.files[name]; dup {
			return invalid("archive entry %q appears twice: refused", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives use TypeRegA
			if err := im.readFile(ctx, name, hdr, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := im.readSymlink(name, hdr); err != nil {
				return err
			}
		case tar.TypeLink:
			return invalid("archive entry %q: hardlink to %q: refused (image archives hold regular files)", hdr.Name, hdr.Linkname)
		default:
			return invalid("archive entry %q: type %q is not a regular file or directory: refused", hdr.Name, string(hdr.Typeflag))
		}
	}
}

func (im *importer) readSymlink(name string, hdr *tar.Header) error {
	if strings.HasPrefix(name, "blobs/") || isMetadata(name) {
		return invalid("archive entry %q: symlink in place of a blob or metadata file: refused", hdr.Name)
	}
	if hdr.Linkname == "" || strings.HasPrefix(hdr.Linkname, "/") {
		return invalid("archive entry %q: symlink to absolute or empty target %q: refused", hdr.Name, hdr.Linkname)
	}
	target := path.Join(path.Dir(name), hdr.Linkname)
	if target == ".." || strings.HasPrefix(target, "../") || target == "." {
		return invalid("archive entry %q: symlink target %q leaves the archive: refused", hdr.Name, hdr.Linkname)
	}
	im.files[name] = &entry{link: target}
	return nil
}

func (im *importer) readFile(ctx context.Context, name string, hdr *tar.Header, tr io.Reader) error {
	if hdr.Size < 0 {
		return invalid("archive entry %q: negative size", hdr.Name)
	}
	if isMetadata(name) {
		if hdr.Size > MaxMetadataSize {
			return invalid("archive entry %q: %d bytes, more than the %d allowed", hdr.Name, hdr.Size, MaxMetadataSize)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return invalid("archive entry %q: %v", hdr.Name, err)
		}
		im.files[name] = &entry{data: data}
		return nil
	}
	if rest, ok := strings.CutPrefix(name, "blobs/"); ok {
		alg, hexPart, ok := strings.Cut(rest, "/")
		dgst := digest.NewDigestFromEncoded(digest.Algorithm(alg), hexPart)
		if !ok || dgst.Validate() != nil {
			return invalid("archive entry %q: not a blob name (blobs/<algorithm>/<hex>): refused", hdr.Name)
		}
		desc := ocispec.Descriptor{Digest: dgst, Size: hdr.Size}
		if err := im.writeBlob(ctx, hdr.Name, desc, tr); err != nil {
			return err
		}
		im.files[name] = &entry{desc: desc, stored: true}
		return nil
	}
	if hdr.Size <= maxSmallFile && im.memUsed+hdr.Size <= maxSmallTotal {
		data, err := io.ReadAll(tr)
		if err != nil {
			return invalid("archive entry %q: %v", hdr.Name, err)
		}
		im.memUsed += int64(len(data))
		im.files[name] = &entry{data: data}
		return nil
	}
	desc := ocispec.Descriptor{Size: hdr.Size}
	dgst, err := im.writeUnnamed(ctx, hdr.Name, desc, tr)
	if err != nil {
		return err
	}
	desc.Digest = dgst
	im.files[name] = &entry{desc: desc, stored: true}
	return nil
}

// writeBlob stores the bytes of r, which must match desc (digest and size).
// If the store has the blob already, the bytes are hashed all the same.
func (im *importer) writeBlob(ctx context.Context, what string, desc ocispec.Descriptor, r io.Reader) error {
	w, err := im.store.Writer(ctx, "imagearchive-"+desc.Digest.String(), desc)
	if errdefs.IsAlreadyExists(err) {
		v := desc.Digest.Verifier()
		n, err := io.Copy(v, ctxReader{ctx, r})
		if err != nil {
			return fmt.Errorf("archive entry %q: %w", what, err)
		}
		if n != desc.Size || !v.Verified() {
			return invalid("archive entry %q: content does not match its digest %s (%d bytes, expected %d): refused", what, desc.Digest, n, desc.Size)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", what, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("archive entry %q: %w", what, err)
	}
	if err := w.Commit(ctx); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("archive entry %q: content does not match its name: %w", what, err)
	}
	return nil
}

// writeUnnamed stores the bytes of r under the digest they hash to.
func (im *importer) writeUnnamed(ctx context.Context, what string, desc ocispec.Descriptor, r io.Reader) (digest.Digest, error) {
	im.nIngest++
	w, err := im.store.Writer(ctx, fmt.Sprintf("imagearchive-%s-%d", im.ingestID, im.nIngest), desc)
	if err != nil {
		return "", fmt.Errorf("archive entry %q: %w", what, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("archive entry %q: %w", what, err)
	}
	dgst := w.Digest()
	if err := w.Commit(ctx); err != nil && !errdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("archive entry %q: %w", what, err)
	}
	return dgst, nil
}

// resolve returns the entry an archive name (from manifest.json) denotes,
// following symlink aliases.
func (im *importer) resolve(name string) (string, *entry, error) {
	clean, err := cleanName(name)
	if err != nil || clean == "" {
		return "", nil, invalid("manifest.json names %q, not a file of the archive", name)
	}
	n := clean
	for range maxDepth {
		e, ok := im.files[n]
		if !ok {
			if n != clean {
				return "", nil, invalid("manifest.json names %q (a symlink to %q), which the archive does not hold", name, n)
			}
			return "", nil, invalid("manifest.json names %q, which the archive does not hold", name)
		}
		if e.link == "" {
			return n, e, nil
		}
		n = e.link
	}
	return "", nil, invalid("manifest.json names %q: too many symlinks", name)
}

// storeEntry makes sure e's bytes are in the store and returns their
// descriptor (digest and size).
func (im *importer) storeEntry(ctx context.Context, name string, e *entry) (ocispec.Descriptor, error) {
	if e.stored {
		return e.desc, nil
	}
	desc := ocispec.Descriptor{Digest: digest.FromBytes(e.data), Size: int64(len(e.data))}
	if err := im.writeBlob(ctx, name, desc, bytes.NewReader(e.data)); err != nil {
		return ocispec.Descriptor{}, err
	}
	e.desc, e.stored = desc, true
	return desc, nil
}

// head returns up to n leading bytes of a stored or in-memory entry.
func (im *importer) head(ctx context.Context, e *entry, n int) ([]byte, error) {
	if !e.stored {
		return e.data[:min(n, len(e.data))], nil
	}
	ra, err := im.store.ReaderAt(ctx, e.desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	buf := make([]byte, min(int64(n), ra.Size()))
	if _, err := ra.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}

// readBlob reads a small stored blob (a manifest, index or config).
func readBlob(ctx context.Context, store *content.Store, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > MaxMetadataSize {
		return nil, invalid("blob %s (%s): %d bytes, more than the %d allowed for metadata", desc.Digest, desc.MediaType, desc.Size, MaxMetadataSize)
	}
	ra, err := store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	if ra.Size() > MaxMetadataSize {
		return nil, invalid("blob %s (%s): %d bytes, more than the %d allowed for metadata", desc.Digest, desc.MediaType, ra.Size(), MaxMetadataSize)
	}
	return io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
}

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// walk calls fn for desc and every blob reachable from it (index →
// manifests → config and layers), parents before children. It reads
// manifests and indexes from the store; fn is called before the read, so
// it may check that the blob is there.
func walk(ctx context.Context, store *content.Store, desc ocispec.Descriptor, depth int, fn func(ocispec.Descriptor) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := desc.Digest.Validate(); err != nil {
		return invalid("descriptor (%s) has a malformed digest %q", desc.MediaType, desc.Digest)
	}
	if err := fn(desc); err != nil {
		return err
	}
	switch {
	case isManifestType(desc.MediaType):
		b, err := readBlob(ctx, store, desc)
		if err != nil {
			return err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return invalid("manifest %s: %v", desc.Digest, err)
		}
		if m.MediaType != "" && m.MediaType != desc.MediaType {
			return invalid("manifest %s says media type %q, its descriptor %q", desc.Digest, m.MediaType, desc.MediaType)
		}
		if m.Config.Digest == "" {
			return invalid("manifest %s has no config", desc.Digest)
		}
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := walk(ctx, store, d, depth+1, fn); err != nil {
				return fmt.Errorf("manifest %s: %w", desc.Digest, err)
			}
		}
	case isIndexType(desc.MediaType):
		if depth >= maxDepth {
			return invalid("index %s: indexes nested more than %d deep", desc.Digest, maxDepth)
		}
		b, err := readBlob(ctx, store, desc)
		if err != nil {
			return err
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return invalid("index %s: %v", desc.Digest, err)
		}
		if idx.MediaType != "" && idx.MediaType != desc.MediaType {
			return invalid("index %s says media type %q, its descriptor %q", desc.Digest, idx.MediaType, desc.MediaType)
		}
		for _, d := range idx.Manifests {
			if err := walk(ctx, store, d, depth+1, fn); err != nil {
				return fmt.Errorf("index %s: %w", desc.Digest, err)
			}
		}
	}
	return nil
}

// checkComplete verifies that every blob reachable from target is stored
// with the size its descriptor gives.
func checkComplete(ctx context.Context, store *content.Store, target ocispec.Descriptor) error {
	return walk(ctx, store, target, 0, func(d ocispec.Descriptor) error {
		info, err := store.Info(ctx, d.Digest)
		if errdefs.IsNotFound(err) {
			return invalid("blob %s (%s) is neither in the archive nor in the store: incomplete image", d.Digest, d.MediaType)
		}
		if err != nil {
			return err
		}
		if info.Size != d.Size {
			return invalid("blob %s (%s) is %d bytes but its descriptor says %d", d.Digest, d.MediaType, info.Size, d.Size)
		}
		return nil
	})
}

func (im *importer) importOCI(ctx context.Context) ([]Image, error) {
	if l, ok := im.files[ocispec.ImageLayoutFile]; ok {
		var layout ocispec.ImageLayout
		if err := json.Unmarshal(l.data, &layout); err != nil {
			return nil, invalid("oci-layout: %v", err)
		}
		if layout.Version != ocispec.ImageLayoutVersion {
			return nil, invalid("oci-layout: image layout version %q, not %q", layout.Version, ocispec.ImageLayoutVersion)
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(im.files[ocispec.ImageIndexFile].data, &idx); err != nil {
		return nil, invalid("index.json: %v", err)
	}
	var images []Image
	for i, m := range idx.Manifests {
		if !isManifestType(m.MediaType) && !isIndexType(m.MediaType) {
			return nil, invalid("index.json: manifests[%d] (%s) has media type %q, not an image manifest or index", i, m.Digest, m.MediaType)
		}
		if err := checkComplete(ctx, im.store, m); err != nil {
			return nil, fmt.Errorf("index.json: manifests[%d]: %w", i, err)
		}
		name, err := ociName(m.Annotations)
		if err != nil {
			return nil, fmt.Errorf("index.json: manifests[%d]: %w", i, err)
		}
		target := m
		target.Annotations = nil
		images = append(images, Image{Name: name, Target: target})
	}
	return images, nil
}

// ociName returns the normalised name an index entry's annotations give:
// io.containerd.image.name, else org.opencontainers.image.ref.name if that
// is a reference rather than a bare tag.
func ociName(ann map[string]string) (string, error) {
	if n := ann[AnnotationContainerdImageName]; n != "" {
		return normalise(n)
	}
	n := ann[ocispec.AnnotationRefName]
	if n == "" || !strings.ContainsAny(n, "/:@") && reference.ValidateTag(n) == nil {
		return "", nil // a bare tag names no repository
	}
	return normalise(n)
}

func normalise(n string) (string, error) {
	ref, err := reference.ParseDockerRef(n)
	if err != nil {
		return "", invalid("image name %q: %v", n, err)
	}
	return ref.String(), nil
}

// resolved is an archive entry and the name it was found under.
type resolved struct {
	name string
	e    *entry
}

// dockerManifestEntry is one image of a docker save manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (im *importer) importDocker(ctx context.Context) ([]Image, error) {
	var entries []dockerManifestEntry
	if err := json.Unmarshal(im.files["manifest.json"].data, &entries); err != nil {
		return nil, invalid("manifest.json: %v", err)
	}
	if len(entries) == 0 {
		return nil, invalid("manifest.json lists no image")
	}
	// Resolve every name first, so that a missing file stores nothing.
	all := make([][]resolved, len(entries))
	for i, de := range entries {
		if de.Config == "" {
			return nil, invalid("manifest.json: image %d has no Config", i)
		}
		for _, p := range append([]string{de.Config}, de.Layers...) {
			n, e, err := im.resolve(p)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: image %d: %w", i, err)
			}
			all[i] = append(all[i], resolved{n, e})
		}
		for _, t := range de.RepoTags {
			if _, err := normalise(t); err != nil {
				return nil, fmt.Errorf("manifest.json: image %d: %w", i, err)
			}
		}
	}
	var images []Image
	for i, de := range entries {
		target, err := im.dockerImage(ctx, all[i][0], all[i][1:])
		if err != nil {
			return nil, fmt.Errorf("manifest.json: image %d (%v): %w", i, de.RepoTags, err)
		}
		if len(de.RepoTags) == 0 {
			images = append(images, Image{Target: target})
		}
		for _, t := range de.RepoTags {
			n, _ := normalise(t)
			images = append(images, Image{Name: n, Target: target})
		}
	}
	return images, nil
}

// dockerImage stores one docker image's config and layers and a
// synthesised schema2 manifest, and returns the manifest's descriptor.
func (im *importer) dockerImage(ctx context.Context, config resolved, layers []resolved) (ocispec.Descriptor, error) {
	cfgName := config.name
	cfgDesc, err := im.storeEntry(ctx, cfgName, config.e)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cfgDesc.MediaType = MediaTypeDockerConfig
	b, err := readBlob(ctx, im.store, cfgDesc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %q: %w", cfgName, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return ocispec.Descriptor{}, invalid("config %q: %v", cfgName, err)
	}
	m := ocispec.Manifest{MediaType: MediaTypeDockerManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	var lerr error
	i := 0
	for _, l := range layers {
		name, e := l.name, l.e
		if i >= len(cfg.RootFS.DiffIDs) {
			lerr = invalid("config %q lists %d diff_ids, fewer than the layers manifest.json names", cfgName, len(cfg.RootFS.DiffIDs))
			break
		}
		d, err := im.storeEntry(ctx, name, e)
		if err != nil {
			lerr = err
			break
		}
		h, err := im.head(ctx, e, 4)
		if err != nil {
			lerr = err
			break
		}
		switch {
		case bytes.HasPrefix(h, []byte{0x1f, 0x8b}):
			d.MediaType = MediaTypeDockerLayerGzip
		case bytes.HasPrefix(h, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			d.MediaType = ocispec.MediaTypeImageLayerZstd
		default:
			d.MediaType = MediaTypeDockerLayer
			if d.Digest != cfg.RootFS.DiffIDs[i] {
				lerr = invalid("layer %q hashes to %s, but the config's diff_ids[%d] is %s: corrupt or mismatched layer", name, d.Digest, i, cfg.RootFS.DiffIDs[i])
			}
		}
		if lerr != nil {
			break
		}
		m.Layers = append(m.Layers, d)
		i++
	}
	if lerr != nil {
		return ocispec.Descriptor{}, lerr
	}
	if i != len(cfg.RootFS.DiffIDs) {
		return ocispec.Descriptor{}, invalid("config %q lists %d diff_ids but manifest.json names %d layers", cfgName, len(cfg.RootFS.DiffIDs), i)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := im.writeBlob(ctx, "synthesised manifest", desc, bytes.NewReader(mb)); err != nil {
		return ocispec.Descriptor{}, err
	}
	if cfg.Architecture != "" || cfg.OS != "" {
		desc.Platform = &ocispec.Platform{Architecture: cfg.Architecture, OS: cfg.OS, Variant: cfg.Variant, OSVersion: cfg.OSVersion}
	}
	return desc, nil
}
