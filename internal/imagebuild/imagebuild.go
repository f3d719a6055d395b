// Package imagebuild makes a small OCI image from the host's static busybox,
// so that tests and benchmarks have an image without a registry.
//
// The image has one gzip-compressed layer holding /bin/busybox, a symlink
// /bin/<applet> → busybox for every applet, /etc/passwd and /etc/group with
// root and nobody, and the usual empty directories (/tmp, /proc, /sys, /dev,
// /root, ...). Its config sets PATH and a default command. Everything is
// deterministic: the same busybox and options give the same digests.
//
// Build returns the image in memory; WriteLayout writes it as an OCI image
// layout directory, WriteArchive as an OCI archive (a tar of that layout),
// which `ctr image import`, `podman load` and `skopeo copy oci-archive:` read.
// The index names the image both ways clients look for a name: the
// org.opencontainers.image.ref.name annotation holds the tag, and
// io.containerd.image.name (read by containerd and podman) the full reference.
//
// It uses only the standard library and the OCI image-spec types.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "crypto/sha256" // registers sha256 for go-digest
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultBusybox is where Debian's busybox-static puts the binary.
const DefaultBusybox = "/bin/busybox"

// DefaultName is the reference of the image when Options.Name is empty.
const DefaultName = "localhost/skiff/busybox:latest"

// AnnotationContainerdImageName is the index annotation with which
// containerd (and podman, reading containerd's archives) names an image.
const AnnotationContainerdImageName = "io.containerd.image.name"

// epoch is the modification time of every file, and the image's creation
// time, so that builds are reproducible.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Options describe the image to build. The zero value is a usable default.
type Options struct {
	// Busybox is the static busybox binary to put in the image
	// (DefaultBusybox if empty). It must be statically linked: the image
	// has no libraries.
	Busybox string
	// Name is the full image reference, e.g. "localhost/skiff/busybox:latest"
	// (DefaultName if empty). Its tag (after the last ':' following the
	// last '/', or "latest") becomes org.opencontainers.image.ref.name.
	Name string
	// Cmd is the image's default command (["sh"] if nil).
	Cmd []string
	// Entrypoint is the image's entrypoint (none if nil).
	Entrypoint []string
	// Env is the image's environment; PATH is added when absent.
	Env []string
	// WorkingDir is the image's working directory ("/" if empty).
	WorkingDir string
	// Labels are the image config's labels.
	Labels map[string]string
	// Volumes are the image config's VOLUMEs (absolute paths).
	Volumes []string
	// Applets are the names linked to busybox in /bin. Nil means the list
	// that `busybox --list` prints.
	Applets []string
	// Architecture and OS default to the running program's GOARCH and
	// "linux".
	Architecture, OS string
}

// Blob is one content-addressed blob of the image.
type Blob struct {
	Descriptor ocispec.Descriptor
	Data       []byte
}

// Image is a built image: its blobs and the index that names it.
type Image struct {
	// Name is the full reference the index gives the image.
	Name string
	// Index is the content of index.json.
	Index ocispec.Index
	// Manifest, Config and Layer are the image's blobs.
	Manifest, Config, Layer Blob
	// DiffID is the digest of the uncompressed layer.
	DiffID digest.Digest
}

// Blobs returns the image's blobs in the order a layout stores them.
func (img *Image) Blobs() []Blob { return []Blob{img.Layer, img.Config, img.Manifest} }

// Build builds the image described by o.
func Build(o Options) (*Image, error) {
	if o.Busybox == "" {
		o.Busybox = DefaultBusybox
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Cmd == nil && o.Entrypoint == nil {
		o.Cmd = []string{"sh"}
	}
	if o.WorkingDir == "" {
		o.WorkingDir = "/"
	}
	if o.Architecture == "" {
		o.Architecture = runtime.GOARCH
	}
	if o.OS == "" {
		o.OS = "linux"
	}
	env := append([]string(nil), o.Env...)
	hasPath := false
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	bb, err := os.ReadFile(o.Busybox)
	if err != nil {
		return nil, fmt.Errorf("build busybox image: read busybox: %w", err)
	}
	applets := o.Applets
	if applets == nil {
		if applets, err = listApplets(o.Busybox); err != nil {
			return nil, fmt.Errorf("build busybox image: %w", err)
		}
	}

	raw, err := layerTar(bb, applets)
	if err != nil {
		return nil, fmt.Errorf("build busybox image: layer: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.ModTime = epoch
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	img := &Image{Name: o.Name, DiffID: digest.FromBytes(raw)}
	img.Layer = newBlob(ocispec.MediaTypeImageLayerGzip, gz.Bytes())

	var volumes map[string]struct{}
	for _, v := range o.Volumes {
		if volumes == nil {
			volumes = map[string]struct{}{}
		}
		volumes[v] = struct{}{}
	}
	created := epoch
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: o.Architecture, OS: o.OS},
		Config: ocispec.ImageConfig{
			Env:        env,
			Entrypoint: o.Entrypoint,
			Cmd:        o.Cmd,
			WorkingDir: o.WorkingDir,
			Labels:     o.Labels,
			Volumes:    volumes,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{img.DiffID}},
		History: []ocispec.History{{
			Created:   &created,
			CreatedBy: "skiff imagebuild: static busybox from " + o.Busybox,
		}},
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	img.Config = newBlob(ocispec.MediaTypeImageConfig, cb)

	man := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config.Descriptor,
		Layers:    []ocispec.Descriptor{img.Layer.Descriptor},
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	img.Manifest = newBlob(ocispec.MediaTypeImageManifest, mb)

	md := img.Manifest.Descriptor
	md.Platform = &ocispec.Platform{Architecture: o.Architecture, OS: o.OS}
	md.Annotations = map[string]string{
		ocispec.AnnotationRefName:     tagOf(o.Name),
		AnnotationContainerdImageName: o.Name,
	}
	img.Index = ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{md},
	}
	return img, nil
}

func newBlob(mediaType string, data []byte) Blob {
	return Blob{
		Descriptor: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))},
		Data:       data,
	}
}

// tagOf returns the tag of a reference, "latest" if it has none (or only
// a digest).
func tagOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return "latest"
}

// listApplets asks busybox for its applets.
func listApplets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	return strings.Fields(string(out)), nil
}

// layerTar returns the uncompressed layer.
func layerTar(busybox []byte, applets []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755}, {"proc", 0o555},
		{"root", 0o700}, {"run", 0o755}, {"sys", 0o555}, {"tmp", 0o1777}, {"usr", 0o755},
		{"usr/bin", 0o755}, {"usr/sbin", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777},
	} {
		if err := dir(d.name, d.mode); err != nil {
			return nil, err
		}
	}
	if err := file("bin/busybox", 0o755, busybox); err != nil {
		return nil, err
	}
	seen := map[string]bool{"busybox": true}
	names := append([]string(nil), applets...)
	sort.Strings(names)
	for _, a := range names {
		a = path.Base(a)
		if a == "" || a == "." || a == "/" || strings.ContainsAny(a, "/\x00") || seen[a] {
			continue
		}
		seen[a] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ name, data string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
	} {
		if err := file(f.name, 0o644, []byte(f.data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// layoutFiles returns the files of the image's OCI layout, by path relative
// to the layout's root, in a fixed order.
func (img *Image) layoutFiles() ([]string, map[string][]byte, error) {
	idx, err := json.Marshal(img.Index)
	if err != nil {
		return nil, nil, err
	}
	lay, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{
		ocispec.ImageLayoutFile: lay,
		ocispec.ImageIndexFile:  idx,
	}
	order := []string{ocispec.ImageLayoutFile, ocispec.ImageIndexFile}
	for _, b := range img.Blobs() {
		p := path.Join(ocispec.ImageBlobsDir, b.Descriptor.Digest.Algorithm().String(), b.Descriptor.Digest.Encoded())
		if _, dup := files[p]; !dup {
			order = append(order, p)
		}
		files[p] = b.Data
	}
	return order, files, nil
}

// WriteLayout writes the image as an OCI image layout in dir, which must be
// empty or absent.
func (img *Image) WriteLayout(dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("write OCI layout: %s is not empty", dir)
	}
	order, files, err := img.layoutFiles()
	if err != nil {
		return err
	}
	for _, p := range order {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("write OCI layout: %w", err)
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return fmt.Errorf("write OCI layout: %w", err)
		}
	}
	return nil
}

// WriteArchive writes the image as an OCI archive: an uncompressed tar of
// its OCI layout.
func (img *Image) WriteArchive(w io.Writer) error {
	order, files, err := img.layoutFiles()
	if err != nil {
		return err
	}
	var dirs []string
	seen := map[string]bool{}
	for _, p := range order {
		for d := path.Dir(p); d != "." && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs) // parents sort before their children
	tw := tar.NewWriter(w)
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, p := range order {
		data := files[p]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteArchiveFile writes the image as an OCI archive to the file path.
func (img *Image) WriteArchiveFile(path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write OCI archive: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			err = fmt.Errorf("write OCI archive %s: %w", path, err)
		}
	}()
	return img.WriteArchive(f)
}

// ErrNoBusybox is returned by Available when the host has no static busybox.
var ErrNoBusybox = errors.New("no static busybox at " + DefaultBusybox + " (Debian package busybox-static)")

// Available reports whether DefaultBusybox exists, as ErrNoBusybox if not.
func Available() error {
	if _, err := os.Stat(DefaultBusybox); err != nil {
		return ErrNoBusybox
	}
	return nil
}
