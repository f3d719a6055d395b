package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeBusybox writes a stand-in binary, so the unit test needs no busybox.
func fakeBusybox(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(p, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildLayout(t *testing.T) {
	opts := Options{Busybox: fakeBusybox(t), Name: "localhost/x/bb:v1", Applets: []string{"sh", "ls", "sh", "../evil"}, Cmd: []string{"echo", "hi"}}
	img, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	if img.Manifest.Descriptor.Digest != again.Manifest.Descriptor.Digest {
		t.Errorf("build not reproducible: %s vs %s", img.Manifest.Descriptor.Digest, again.Manifest.Descriptor.Digest)
	}
	ann := img.Index.Manifests[0].Annotations
	if ann[ocispec.AnnotationRefName] != "v1" || ann[AnnotationContainerdImageName] != "localhost/x/bb:v1" {
		t.Errorf("index annotations = %v", ann)
	}

	dir := filepath.Join(t.TempDir(), "layout")
	if err := img.WriteLayout(dir); err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	blob := func(d digest.Digest) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		if digest.FromBytes(b) != d {
			t.Fatalf("blob %s has the wrong digest", d)
		}
		return b
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(blob(idx.Manifests[0].Digest), &man); err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(blob(man.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Config.Cmd) != 2 || cfg.Config.Cmd[0] != "echo" || cfg.OS != "linux" {
		t.Errorf("config = %+v", cfg)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(man.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(raw) != cfg.RootFS.DiffIDs[0] {
		t.Errorf("diff id mismatch")
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
	if h := entries["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/sh = %+v", h)
	}
	if h := entries["bin/busybox"]; h == nil || h.Mode != 0o755 {
		t.Errorf("bin/busybox = %+v", h)
	}
	if entries["bin/evil"] == nil {
		t.Errorf("applet ../evil not reduced to its base name")
	}
	for name := range entries {
		if filepath.IsAbs(name) || name == ".." || len(name) > 2 && name[:3] == "../" {
			t.Errorf("unsafe entry %q", name)
		}
	}

	var ar bytes.Buffer
	if err := img.WriteArchive(&ar); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&ar)
	got := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = true
	}
	for _, want := range []string{"oci-layout", "index.json", "blobs/", "blobs/sha256/", "blobs/sha256/" + man.Config.Digest.Encoded()} {
		if !got[want] {
			t.Errorf("archive lacks %s (has %v)", want, got)
		}
	}
}

func TestTagOf(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                           "latest",
		"localhost:5000/a/b":                "latest",
		"localhost:5000/a/b:v2":             "v2",
		"docker.io/library/bb:1@sha256:abc": "1",
	} {
		if got := tagOf(in); got != want {
			t.Errorf("tagOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
