package reference

import (
	"strings"
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
)

const hex64 = "2e2fc0c4c3a8e0b4c1cd7a1f0a1ecb9a8a3f6a1f8c9d0e1f2a3b4c5d6e7f8091"

func TestParseDockerRef(t *testing.T) {
	tests := []struct {
		in       string
		want     string // canonical String()
		familiar string
		domain   string
		path     string
		tag      string
		object   string
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", "latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io", "library/busybox", "1.36", "1.36"},
		{"library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", "latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", "latest"},
		{"index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", "latest"},
		{"user/app", "docker.io/user/app:latest", "user/app:latest", "docker.io", "user/app", "latest", "latest"},
		{"library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest", "docker.io", "library/a/b", "latest", "latest"},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest", "localhost", "app", "latest", "latest"},
		{"localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000", "app", "v1", "v1"},
		{"127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000", "a/b/c", "latest", "latest"},
		{"[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest", "[::1]:5000", "app", "latest", "latest"},
		{"ghcr.io/o/x_y.z__w--v", "ghcr.io/o/x_y.z__w--v:latest", "ghcr.io/o/x_y.z__w--v:latest", "ghcr.io", "o/x_y.z__w--v", "latest", "latest"},
		{"Registry/app", "Registry/app:latest", "Registry/app:latest", "Registry", "app", "latest", "latest"},
		{"busybox@sha256:" + hex64, "docker.io/library/busybox@sha256:" + hex64, "busybox@sha256:" + hex64, "docker.io", "library/busybox", "", "sha256:" + hex64},
		{"busybox:1@sha256:" + hex64, "docker.io/library/busybox:1@sha256:" + hex64, "busybox:1@sha256:" + hex64, "docker.io", "library/busybox", "1", "sha256:" + hex64},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseDockerRef(tt.in)
			if err != nil {
				t.Fatalf("ParseDockerRef(%q): %v", tt.in, err)
			}
			if got := r.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := r.Familiar(); got != tt.familiar {
				t.Errorf("Familiar() = %q, want %q", got, tt.familiar)
			}
			if r.Domain != tt.domain || r.Path != tt.path || r.Tag != tt.tag {
				t.Errorf("got domain %q path %q tag %q, want %q %q %q", r.Domain, r.Path, r.Tag, tt.domain, tt.path, tt.tag)
			}
			if got := r.Object(); got != tt.object {
				t.Errorf("Object() = %q, want %q", got, tt.object)
			}
			// The canonical form parses to itself, strictly.
			r2, err := Parse(r.String())
			if err != nil {
				t.Fatalf("Parse(canonical %q): %v", r.String(), err)
			}
			if r2 != r {
				t.Errorf("Parse(String()) = %+v, want %+v", r2, r)
			}
		})
	}
}

func TestParseNormalizedKeepsNoTag(t *testing.T) {
	r, err := ParseNormalized("busybox")
	if err != nil {
		t.Fatal(err)
	}
	if r.Tag != "" || r.String() != "docker.io/library/busybox" {
		t.Errorf("ParseNormalized(busybox) = %q tag %q; want no tag", r.String(), r.Tag)
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		in      string
		mention string // a piece of the explanation
	}{
		{"", "empty reference"},
		{hex64, "image ID"},
		{"Busybox", "lowercase"},
		{"docker.io/Library/busybox", "lowercase"},
		{"busybox:", "tag"},
		{"busybox:-x", "tag"},
		{"busybox:" + strings.Repeat("a", 129), "tag"},
		{"busybox@sha256:abc", "digest"},
		{"busybox@", "digest"},
		{"busybox@md5:" + hex64, "digest"},
		{"a//b", "repository path"},
		{"-a/b", "repository path"},
		{"a_/b", "repository path"},
		{"exa mple/app", "repository path"},
		{"host:port/app", "registry"},
		{"localhost:5000/", "repository path"},
		{":tag", "empty repository name"},
		{"ghcr.io/" + strings.Repeat("a", 250), "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseDockerRef(tt.in)
			if err == nil {
				t.Fatalf("ParseDockerRef(%q) = %v, want an error", tt.in, r)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v is not ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if !strings.Contains(err.Error(), "\""+tt.in+"\"") {
				t.Errorf("error %q does not name the input", err)
			}
		})
	}
}

func TestParseStrictRefusesShortForms(t *testing.T) {
	for _, in := range []string{"busybox", "library/busybox", "index.docker.io/library/busybox", "docker.io/busybox:1"} {
		if _, err := Parse(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q) error = %v, want ErrInvalidArgument", in, err)
		}
	}
	for _, in := range []string{"docker.io/library/busybox", "localhost:5000/a:b", "ghcr.io/x/y@sha256:" + hex64} {
		if _, err := Parse(in); err != nil {
			t.Errorf("Parse(%q): %v", in, err)
		}
	}
}

func TestValidateTag(t *testing.T) {
	for _, tt := range []struct {
		tag string
		ok  bool
	}{{"latest", true}, {"v1.2.3-rc_1", true}, {"_x", true}, {".x", false}, {"-x", false}, {"", false}, {"a/b", false}, {strings.Repeat("x", 128), true}, {strings.Repeat("x", 129), false}} {
		err := ValidateTag(tt.tag)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateTag(%q) = %v, want ok=%v", tt.tag, err, tt.ok)
		}
	}
}
