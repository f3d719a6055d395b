package imagearchive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

type tEntry struct {
	hdr  tar.Header
	data []byte
}

func busybox(t *testing.T) (*imagebuild.Image, []byte) {
	t.Helper()
	if err := imagebuild.Available(); err != nil {
		t.Skip(err)
	}
	img, err := imagebuild.Build(imagebuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := img.WriteArchive(&buf); err != nil {
		t.Fatal(err)
	}
	return img, buf.Bytes()
}

// dockerArchive converts an OCI archive to a docker save archive with skopeo.
func dockerArchive(t *testing.T, oci []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "oci.tar"), filepath.Join(dir, "docker.tar")
	if err := os.WriteFile(src, oci, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("skopeo", "copy", "--quiet", "oci-archive:"+src, "docker-archive:"+dst+":busybox:latest").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newStore(t *testing.T) *content.Store {
	t.Helper()
	s, err := content.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readEntries(t *testing.T, b []byte) []tEntry {
	t.Helper()
	var es []tEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, tEntry{*h, data})
	}
}

func writeEntries(t *testing.T, es []tEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name string, data []byte) tEntry {
	return tEntry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data}
}

func readStored(t *testing.T, s *content.Store, d digest.Digest) []byte {
	t.Helper()
	ra, err := s.ReaderAt(context.Background(), ocispec.Descriptor{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	b, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(b); got != d {
		t.Fatalf("stored blob %s hashes to %s", d, got)
	}
	return b
}

func has(t *testing.T, s *content.Store, d digest.Digest) bool {
	t.Helper()
	ok, err := s.Exists(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestImportOCI(t *testing.T) {
	img, arch := busybox(t)
	s := newStore(t)
	images, err := Import(context.Background(), bytes.NewReader(arch), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 {
		t.Fatalf("got %d images, want 1: %+v", len(images), images)
	}
	if images[0].Name != imagebuild.DefaultName {
		t.Errorf("name %q, want %q", images[0].Name, imagebuild.DefaultName)
	}
	if images[0].Target.Digest != img.Manifest.Descriptor.Digest || images[0].Target.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("target %+v, want manifest %s", images[0].Target, img.Manifest.Descriptor.Digest)
	}
	for _, b := range img.Blobs() {
		if got := readStored(t, s, b.Descriptor.Digest); !bytes.Equal(got, b.Data) {
			t.Errorf("blob %s differs from the built one", b.Descriptor.Digest)
		}
	}
	// A second import of the same archive (blobs already stored) still works.
	again, err := Import(context.Background(), bytes.NewReader(arch), s)
	if err != nil || len(again) != 1 || again[0].Target.Digest != images[0].Target.Digest {
		t.Fatalf("re-import: %v %+v", err, again)
	}
}

func TestImportDocker(t *testing.T) {
	img, oci := busybox(t)
	arch := dockerArchive(t, oci)
	s := newStore(t)
	images, err := Import(context.Background(), bytes.NewReader(arch), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].Name != "docker.io/library/busybox:latest" {
		t.Fatalf("images %+v, want one named docker.io/library/busybox:latest", images)
	}
	target := images[0].Target
	if target.MediaType != MediaTypeDockerManifest {
		t.Fatalf("target media type %q", target.MediaType)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(readStored(t, s, target.Digest), &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != MediaTypeDockerManifest || m.SchemaVersion != 2 {
		t.Errorf("synthesised manifest: mediaType %q schemaVersion %d", m.MediaType, m.SchemaVersion)
	}
	if m.Config.Digest != img.Config.Descriptor.Digest || m.Config.MediaType != MediaTypeDockerConfig {
		t.Errorf("config %+v, want %s", m.Config, img.Config.Descriptor.Digest)
	}
	if len(m.Layers) != 1 || m.Layers[0].Digest != img.DiffID || m.Layers[0].MediaType != MediaTypeDockerLayer {
		t.Fatalf("layers %+v, want one uncompressed layer %s", m.Layers, img.DiffID)
	}
	readStored(t, s, m.Layers[0].Digest)
	readStored(t, s, m.Config.Digest)
	// The synthesised manifest is deterministic.
	again, err := Import(context.Background(), bytes.NewReader(arch), newStore(t))
	if err != nil || len(again) != 1 || again[0].Target.Digest != target.Digest {
		t.Fatalf("re-import into a new store: %v %+v, want target %s", err, again, target.Digest)
	}
}

func TestRoundTrip(t *testing.T) {
	_, oci := busybox(t)
	for _, tc := range []struct {
		name string
		arch func(t *testing.T) []byte
	}{
		{"oci", func(*testing.T) []byte { return oci }},
		{"docker", func(t *testing.T) []byte { return dockerArchive(t, oci) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s1 := newStore(t)
			images, err := Import(ctx, bytes.NewReader(tc.arch(t)), s1)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Export(ctx, &out, s1, images); err != nil {
				t.Fatal(err)
			}
			var out2 bytes.Buffer
			if err := Export(ctx, &out2, s1, images); err != nil || !bytes.Equal(out.Bytes(), out2.Bytes()) {
				t.Errorf("export is not deterministic (err %v)", err)
			}
			s2 := newStore(t)
			back, err := Import(ctx, bytes.NewReader(out.Bytes()), s2)
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != len(images) {
				t.Fatalf("round trip gave %+v, want %+v", back, images)
			}
			for i := range back {
				if back[i].Name != images[i].Name || back[i].Target.Digest != images[i].Target.Digest || back[i].Target.MediaType != images[i].Target.MediaType {
					t.Errorf("image %d: %+v after round trip, want %+v", i, back[i], images[i])
				}
			}
			if _, err := exec.LookPath("skopeo"); err == nil {
				p := filepath.Join(t.TempDir(), "out.tar")
				if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				if o, err := exec.Command("skopeo", "inspect", "--raw", "oci-archive:"+p).CombinedOutput(); err != nil {
					t.Errorf("skopeo cannot read the exported archive: %v\n%s", err, o)
				}
			}
		})
	}
}

func TestExportMissingBlob(t *testing.T) {
	s := newStore(t)
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 6}
	var out bytes.Buffer
	err := Export(context.Background(), &out, s, []Image{{Name: "x", Target: d}})
	if !errdefs.IsNotFound(err) || out.Len() != 0 {
		t.Fatalf("export of a missing image: err %v, %d bytes written; want not-found and nothing", err, out.Len())
	}
}

func TestImportHostile(t *testing.T) {
	img, oci := busybox(t)
	docker := dockerArchive(t, oci)
	layer := img.Layer.Descriptor.Digest
	// The manifest a good import of the docker archive synthesises.
	good, err := Import(context.Background(), bytes.NewReader(docker), newStore(t))
	if err != nil {
		t.Fatal(err)
	}
	synth := good[0].Target.Digest

	mutate := func(src []byte, f func([]tEntry) []tEntry) func(*testing.T) []byte {
		return func(t *testing.T) []byte { return writeEntries(t, f(readEntries(t, src))) }
	}
	raw := func(es ...tEntry) func(*testing.T) []byte {
		return func(t *testing.T) []byte { return writeEntries(t, es) }
	}
	withOCI := func(extra tEntry) func(*testing.T) []byte {
		return mutate(oci, func(es []tEntry) []tEntry { return append([]tEntry{extra}, es...) })
	}
	link := func(typ byte, name, target string) tEntry {
		return tEntry{tar.Header{Typeflag: typ, Name: name, Linkname: target}, nil}
	}
	for _, tc := range []struct {
		name    string
		arch    func(*testing.T) []byte
		pre     bool          // import the good OCI archive first
		want    string        // in the error
		absent  digest.Digest // must not be in the store afterwards
		notFull bool          // the error is not of the invalid-argument class
	}{
		{name: "dotdot", arch: withOCI(reg("../x", []byte("x"))), want: `"../x"`},
		{name: "dotdot inside", arch: withOCI(reg("blobs/../../x", []byte("x"))), want: `".."`},
		{name: "absolute", arch: withOCI(reg("/abs", []byte("x"))), want: `"/abs"`},
		{name: "symlink escaping", arch: withOCI(link(tar.TypeSymlink, "x", "../../etc/passwd")), want: "leaves the archive"},
		{name: "symlink absolute", arch: withOCI(link(tar.TypeSymlink, "x", "/etc/passwd")), want: "absolute"},
		{name: "symlink as blob", arch: withOCI(link(tar.TypeSymlink, "blobs/sha256/"+layer.Encoded(), "../../x")), want: "symlink in place of a blob"},
		{name: "hardlink", arch: withOCI(link(tar.TypeLink, "x", "index.json")), want: "hardlink"},
		{name: "device", arch: withOCI(tEntry{tar.Header{Typeflag: tar.TypeChar, Name: "dev", Devmajor: 1, Devminor: 3}, nil}), want: `"dev"`},
		{name: "bad blob name", arch: withOCI(reg("blobs/sha256/nothex", []byte("x"))), want: "not a blob name"},
		{name: "duplicate", arch: withOCI(reg("index.json", []byte("{}"))), want: "twice"},
		{name: "huge index.json", arch: raw(reg("index.json", make([]byte, MaxMetadataSize+1))), want: "more than"},
		{name: "not an archive", arch: raw(reg("hello", []byte("x"))), want: "neither"},
		{name: "garbage", arch: func(*testing.T) []byte { return bytes.Repeat([]byte("garbage!"), 200) }, want: "reading archive"},
		{
			name: "blob content mismatch",
			arch: mutate(oci, func(es []tEntry) []tEntry {
				for i := range es {
					if strings.HasSuffix(es[i].hdr.Name, layer.Encoded()) {
						es[i].data = bytes.Clone(es[i].data)
						es[i].data[100] ^= 0xff
					}
				}
				return es
			}),
			want: layer.Encoded(), absent: layer,
		},
		{
			name: "blob content mismatch, blob already stored",
			arch: mutate(oci, func(es []tEntry) []tEntry {
				for i := range es {
					if strings.HasSuffix(es[i].hdr.Name, layer.Encoded()) {
						es[i].data = bytes.Clone(es[i].data)
						es[i].data[100] ^= 0xff
					}
				}
				return es
			}),
			pre: true, want: "does not match its digest",
		},
		{
			name: "oci missing layer",
			arch: mutate(oci, func(es []tEntry) []tEntry {
				var out []tEntry
				for _, e := range es {
					if !strings.HasSuffix(e.hdr.Name, layer.Encoded()) {
						out = append(out, e)
					}
				}
				return out
			}),
			want: "incomplete image",
		},
		{
			name: "docker manifest names a missing layer",
			arch: mutate(docker, func(es []tEntry) []tEntry {
				for i := range es {
					if es[i].hdr.Name == "manifest.json" {
						es[i].data = bytes.Replace(es[i].data, []byte(`"Layers":["`), []byte(`"Layers":["missing.tar","`), 1)
					}
				}
				return es
			}),
			want: `"missing.tar"`, absent: synth,
		},
		{
			name: "docker layer does not match diff_id",
			arch: mutate(docker, func(es []tEntry) []tEntry {
				for i := range es {
					if strings.HasSuffix(es[i].hdr.Name, ".tar") && es[i].hdr.Typeflag == tar.TypeReg {
						es[i].data = bytes.Clone(es[i].data)
						es[i].data[len(es[i].data)-1] ^= 0xff // tar padding: still a tar
					}
				}
				return es
			}),
			want: "diff_ids", absent: synth,
		},
		{
			name: "docker symlink to a missing file",
			arch: mutate(docker, func(es []tEntry) []tEntry {
				for i := range es {
					if es[i].hdr.Name == "manifest.json" {
						var m []map[string]any
						if err := json.Unmarshal(es[i].data, &m); err != nil {
							t.Fatal(err)
						}
						m[0]["Layers"] = []string{"dangling/layer.tar"}
						es[i].data, _ = json.Marshal(m)
					}
				}
				return append(es, link(tar.TypeSymlink, "dangling/layer.tar", "../nowhere.tar"))
			}),
			want: `"nowhere.tar"`, absent: synth,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if tc.pre {
				if _, err := Import(context.Background(), bytes.NewReader(oci), s); err != nil {
					t.Fatal(err)
				}
			}
			images, err := Import(context.Background(), bytes.NewReader(tc.arch(t)), s)
			if err == nil {
				t.Fatalf("imported %+v, want an error", images)
			}
			if images != nil {
				t.Errorf("got images %+v along with the error", images)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if tc.absent != "" && has(t, s, tc.absent) {
				t.Errorf("blob %s was stored", tc.absent)
			}
			ingests, err := s.Ingests(context.Background())
			if err != nil || len(ingests) != 0 {
				t.Errorf("ingests left behind: %v %v", ingests, err)
			}
		})
	}
}

func TestImportSymlinkAlias(t *testing.T) {
	// A docker archive whose manifest names the `<id>/layer.tar` symlink
	// (as `docker save` writes) imports like one naming the file itself.
	_, oci := busybox(t)
	docker := dockerArchive(t, oci)
	es := readEntries(t, docker)
	var linkName string
	for _, e := range es {
		if e.hdr.Typeflag == tar.TypeSymlink {
			linkName = e.hdr.Name
		}
	}
	if linkName == "" {
		t.Fatal("skopeo's docker archive has no symlink; test premise gone")
	}
	for i := range es {
		if es[i].hdr.Name == "manifest.json" {
			var m []map[string]any
			if err := json.Unmarshal(es[i].data, &m); err != nil {
				t.Fatal(err)
			}
			m[0]["Layers"] = []string{linkName}
			es[i].data, _ = json.Marshal(m)
		}
	}
	want, err := Import(context.Background(), bytes.NewReader(docker), newStore(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Import(context.Background(), bytes.NewReader(writeEntries(t, es)), newStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Target.Digest != want[0].Target.Digest {
		t.Fatalf("via symlink: %+v, want %+v", got, want)
	}
}

func TestOCIName(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{ocispec.AnnotationRefName: "latest"}, ""},
		{map[string]string{ocispec.AnnotationRefName: "busybox:1.36"}, "docker.io/library/busybox:1.36"},
		{map[string]string{ocispec.AnnotationRefName: "latest", AnnotationContainerdImageName: "busybox"}, "docker.io/library/busybox:latest"},
		{map[string]string{AnnotationContainerdImageName: "example.com/a/b:v1"}, "example.com/a/b:v1"},
	} {
		got, err := ociName(tc.ann)
		if err != nil || got != tc.want {
			t.Errorf("ociName(%v) = %q, %v; want %q", tc.ann, got, err, tc.want)
		}
	}
	if _, err := ociName(map[string]string{AnnotationContainerdImageName: "Bad Name"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad name: err %v, want ErrInvalidArgument", err)
	}
}

// TestExportDockerManifest: an exported archive also carries docker's
// manifest.json, enough on its own for a docker-save reader.
func TestExportDockerManifest(t *testing.T) {
	img, oci := busybox(t)
	ctx := context.Background()
	s1 := newStore(t)
	images, err := Import(ctx, bytes.NewReader(oci), s1)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Export(ctx, &out, s1, images); err != nil {
		t.Fatal(err)
	}
	var dockerOnly []tEntry
	var manifest []dockerEntry
	for _, e := range readEntries(t, out.Bytes()) {
		switch e.hdr.Name {
		case ocispec.ImageIndexFile, ocispec.ImageLayoutFile:
			continue
		case "manifest.json":
			if err := json.Unmarshal(e.data, &manifest); err != nil {
				t.Fatal(err)
			}
		}
		dockerOnly = append(dockerOnly, e)
	}
	if len(manifest) != 1 || manifest[0].Config != "blobs/sha256/"+img.Config.Descriptor.Digest.Encoded() ||
		len(manifest[0].Layers) != 1 || len(manifest[0].RepoTags) != 1 {
		t.Fatalf("manifest.json = %+v", manifest)
	}
	back, err := Import(ctx, bytes.NewReader(writeEntries(t, dockerOnly)), newStore(t))
	if err != nil {
		t.Fatalf("import of the archive without index.json (docker's reader): %v", err)
	}
	if len(back) != 1 || back[0].Name != images[0].Name {
		t.Errorf("docker-path import gave %+v, want the name %q", back, images[0].Name)
	}
	if _, err := exec.LookPath("skopeo"); err == nil {
		p := filepath.Join(t.TempDir(), "out.tar")
		if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if o, err := exec.Command("skopeo", "inspect", "--raw", "docker-archive:"+p).CombinedOutput(); err != nil {
			t.Errorf("skopeo cannot read the exported archive as docker-archive: %v\n%s", err, o)
		}
	}
}
