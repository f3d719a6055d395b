package progress

import (
	"bytes"
	"strings"
	"testing"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

func updates() []*skiffv1.PullProgress {
	l1 := "sha256:" + strings.Repeat("a", 64)
	l2 := "sha256:" + strings.Repeat("b", 64)
	return []*skiffv1.PullProgress{
		{Id: "sha256:" + strings.Repeat("f", 64), Kind: "index", Status: "resolving"},
		{Id: l1, Kind: "layer", Status: "waiting"},
		{Id: l2, Kind: "layer", Status: "exists"},
		{Id: l1, Kind: "layer", Status: "downloading", Current: 0, Total: 3_400_000},
		{Id: l1, Kind: "layer", Status: "downloading", Current: 1_000_000, Total: 3_400_000},
		{Id: l1, Kind: "layer", Status: "downloading", Current: 3_400_000, Total: 3_400_000},
		{Id: l1, Kind: "layer", Status: "done", Current: 3_400_000, Total: 3_400_000},
		{Id: l1, Kind: "layer", Status: "extracting"},
		{Id: l1, Kind: "layer", Status: "extracted"},
		{Image: &skiffv1.Image{Name: "x"}},
	}
}

func TestPlain(t *testing.T) {
	var b bytes.Buffer
	d := NewPlain(&b)
	for _, u := range updates() {
		d.Update(u)
	}
	d.Close()
	want := `aaaaaaaaaaaa: Pulling fs layer
bbbbbbbbbbbb: Already exists
aaaaaaaaaaaa: Downloading 0B/3.4MB
aaaaaaaaaaaa: Download complete
aaaaaaaaaaaa: Extracting
aaaaaaaaaaaa: Pull complete
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if !d.Downloaded() {
		t.Error("Downloaded() = false")
	}
	up := NewPlain(&bytes.Buffer{})
	up.Update(&skiffv1.PullProgress{Id: "sha256:1", Kind: "layer", Status: "exists"})
	up.Update(&skiffv1.PullProgress{Id: "sha256:2", Kind: "manifest", Status: "done"})
	up.Update(&skiffv1.PullProgress{Status: "done", Image: &skiffv1.Image{Name: "x"}})
	if up.Downloaded() {
		t.Error("an up-to-date pull counts as downloaded")
	}
}

func TestBars(t *testing.T) {
	var b bytes.Buffer
	d := NewBars(&b)
	for _, u := range updates() {
		d.Update(u)
	}
	d.Close()
	if !strings.Contains(b.String(), "aaaaaaaaaaaa:") || !strings.Contains(b.String(), "bbbbbbbbbbbb:") {
		t.Errorf("bars output lacks layers: %q", b.String())
	}
	if !d.Downloaded() {
		t.Error("Downloaded() = false")
	}
	// A pull that failed half way still closes.
	d = NewBars(&bytes.Buffer{})
	d.Update(&skiffv1.PullProgress{Id: "sha256:1", Kind: "layer", Status: "downloading", Current: 1, Total: 10})
	d.Update(&skiffv1.PullProgress{Id: "sha256:2", Kind: "layer", Status: "failed"})
	d.Close()
}

func TestStatusText(t *testing.T) {
	for in, want := range map[string]string{"waiting": "Pulling fs layer", "verifying": "Verifying Checksum", "odd": "Odd", "": ""} {
		if got := StatusText(in); got != want {
			t.Errorf("StatusText(%q) = %q, want %q", in, got, want)
		}
	}
}
