package remote

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/reference"
)

func mustRef(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.ParseDockerRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		in   string
		want []Challenge
	}{
		{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`,
			[]Challenge{{"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull"}}}},
		{`Basic realm="Registry Realm"`, []Challenge{{"basic", map[string]string{"realm": "Registry Realm"}}}},
		{`bearer realm=https://x/t, service=svc`, []Challenge{{"bearer", map[string]string{"realm": "https://x/t", "service": "svc"}}}},
		{`Bearer realm="a\"b",error="insufficient_scope"`, []Challenge{{"bearer", map[string]string{"realm": `a"b`, "error": "insufficient_scope"}}}},
		{`Basic realm="r", Bearer realm="https://t",service="s"`, []Challenge{
			{"basic", map[string]string{"realm": "r"}},
			{"bearer", map[string]string{"realm": "https://t", "service": "s"}},
		}},
		{`Negotiate`, []Challenge{{"negotiate", map[string]string{}}}},
		{``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := ParseChallenges(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseChallenges(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	r := NewResolver(Options{Insecure: []string{"registry.lan:5000", "build-host", "10.1.0.0/16", "http://other.lan"}})
	tests := []struct {
		domain, host, scheme string
	}{
		{"docker.io", "registry-1.docker.io", "https"},
		{"ghcr.io", "ghcr.io", "https"},
		{"localhost:5000", "localhost:5000", "http"},
		{"localhost", "localhost", "http"},
		{"127.0.0.1:5000", "127.0.0.1:5000", "http"},
		{"127.3.2.1", "127.3.2.1", "http"},
		{"[::1]:5000", "[::1]:5000", "http"},
		{"registry.lan:5000", "registry.lan:5000", "http"},
		{"registry.lan:5001", "registry.lan:5001", "https"},
		{"build-host:443", "build-host:443", "http"},
		{"10.1.2.3:5000", "10.1.2.3:5000", "http"},
		{"10.2.0.1:5000", "10.2.0.1:5000", "https"},
		{"other.lan", "other.lan", "http"},
		{"128.0.0.1", "128.0.0.1", "https"},
		{"localhost.evil.com", "localhost.evil.com", "https"},
	}
	for _, tt := range tests {
		e := r.endpointFor(tt.domain)
		if e.host != tt.host || e.scheme != tt.scheme {
			t.Errorf("endpointFor(%q) = %s://%s, want %s://%s", tt.domain, e.scheme, e.host, tt.scheme, tt.host)
		}
	}
}

func TestSelectManifest(t *testing.T) {
	d := func(name, os, arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat(name, 64)[:64]),
			Platform: &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	amd := d("a", "linux", "amd64", "")
	amdv3 := d("b", "linux", "amd64", "v3")
	arm64 := d("c", "linux", "arm64", "") // no variant: means v8
	armv5 := d("d", "linux", "arm", "v5")
	armv7 := d("e", "linux", "arm", "v7")
	unknown := d("f", "unknown", "unknown", "")
	noPlatform := ocispec.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("0", 64))}
	all := []ocispec.Descriptor{unknown, noPlatform, amdv3, amd, arm64, armv5, armv7}
	tests := []struct {
		want  ocispec.Platform
		list  []ocispec.Descriptor
		pick  ocispec.Descriptor
		found bool
	}{
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, all, amd, true},
		{ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, all, amdv3, true},
		{ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v4"}, all, amdv3, true},
		{ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}, []ocispec.Descriptor{amdv3}, ocispec.Descriptor{}, false},
		{ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, all, arm64, true},
		{ocispec.Platform{OS: "linux", Architecture: "aarch64"}, all, arm64, true},
		{ocispec.Platform{OS: "linux", Architecture: "arm"}, all, armv7, true},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, all, armv5, true},
		{ocispec.Platform{OS: "linux", Architecture: "armhf"}, all, armv7, true},
		{ocispec.Platform{OS: "linux", Architecture: "riscv64"}, all, ocispec.Descriptor{}, false},
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, nil, ocispec.Descriptor{}, false},
	}
	for _, tt := range tests {
		t.Run(FormatPlatform(tt.want), func(t *testing.T) {
			got, err := SelectManifest(tt.list, tt.want)
			if !tt.found {
				if !errdefs.IsNotFound(err) {
					t.Fatalf("SelectManifest = %v, %v; want ErrNotFound", got.Digest, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != tt.pick.Digest {
				t.Errorf("picked %+v, want %+v", got.Platform, tt.pick.Platform)
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"linux/amd64", "linux/amd64", true},
		{"linux/x86_64", "linux/amd64", true},
		{"amd64", "linux/amd64", true},
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm", "linux/arm/v7", true},
		{"Linux/ARM/v6", "linux/arm/v6", true},
		{"linux/amd64/v1", "linux/amd64", true},
		{"", "", false},
		{"linux/", "", false},
		{"a/b/c/d", "", false},
	} {
		p, err := ParsePlatform(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParsePlatform(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("ParsePlatform(%q) error %v is not ErrInvalidArgument", tt.in, err)
			}
			continue
		}
		if got := FormatPlatform(p); got != tt.want {
			t.Errorf("ParsePlatform(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if p := DefaultPlatform(); p.OS == "" || p.Architecture == "" {
		t.Errorf("DefaultPlatform() = %+v", p)
	}
}

func TestDockerConfig(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgPath := write("config.json", `{
		"auths": {
			"https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
			"localhost:5000": {"username": "u", "password": "p"},
			"ghcr.io": {"auth": "Z2g6Z2hwdw=="},
			"quay.io": {"identitytoken": "xyz"},
			"helped.io": {}
		},
		"credHelpers": {"helped.io": "pass"},
		"psFormat": "table {{.ID}}"
	}`)
	cfg, err := LoadDockerConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host, user, secret string
		notImpl            bool
	}{
		{"docker.io", "hub", "hubpw", false},
		{"index.docker.io", "hub", "hubpw", false},
		{"localhost:5000", "u", "p", false},
		{"ghcr.io", "gh", "ghpw", false},
		{"quay.io", "", "", true},
		{"helped.io", "", "", true},
		{"nobody.io", "", "", false},
	} {
		u, s, err := cfg.Credentials(ctx, tt.host)
		if tt.notImpl {
			if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "skiff login "+tt.host) {
				t.Errorf("%s: error = %v, want ErrNotImplemented that says what to do", tt.host, err)
			}
			continue
		}
		if err != nil || u != tt.user || s != tt.secret {
			t.Errorf("%s: got %q %q %v, want %q %q", tt.host, u, s, err, tt.user, tt.secret)
		}
	}

	// Set/Save keep other keys and are read back; the file is private.
	cfg.Set("docker.io", "new", "pw2")
	cfg.Set("registry.lan:5000", "x", "y")
	if !cfg.Remove("ghcr.io") || cfg.Remove("ghcr.io") {
		t.Error("Remove should report the first removal only")
	}
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfgPath)
	if !strings.Contains(string(b), `"psFormat"`) || !strings.Contains(string(b), `"credHelpers"`) || !strings.Contains(string(b), "https://index.docker.io/v1/") {
		t.Errorf("saved config lost keys:\n%s", b)
	}
	if fi, _ := os.Stat(cfgPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("saved config mode %v", fi.Mode())
	}
	cfg2, err := LoadDockerConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string][2]string{"docker.io": {"new", "pw2"}, "registry.lan:5000": {"x", "y"}, "ghcr.io": {"", ""}} {
		u, s, _ := cfg2.Credentials(ctx, host)
		if u != want[0] || s != want[1] {
			t.Errorf("after save, %s = %q %q, want %q", host, u, s, want)
		}
	}

	// credsStore applies to registries without inline credentials.
	cs, err := LoadDockerConfig(write("cs.json", `{"auths":{"a.io":{"auth":"YTpi"}},"credsStore":"desktop"}`))
	if err != nil {
		t.Fatal(err)
	}
	if u, _, err := cs.Credentials(ctx, "a.io"); err != nil || u != "a" {
		t.Errorf("inline auth beside credsStore: %q %v", u, err)
	}
	if _, _, err := cs.Credentials(ctx, "b.io"); !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "docker-credential-desktop") {
		t.Errorf("credsStore: %v", err)
	}

	// Missing and empty files are empty configs; malformed ones are errors.
	for _, p := range []string{filepath.Join(dir, "missing.json"), write("empty.json", "")} {
		c, err := LoadDockerConfig(p)
		if err != nil {
			t.Errorf("LoadDockerConfig(%s) = %v", p, err)
			continue
		}
		if u, s, err := c.Credentials(ctx, "docker.io"); u != "" || s != "" || err != nil {
			t.Errorf("empty config gave %q %q %v", u, s, err)
		}
	}
	for name, body := range map[string]string{"bad1.json": "{", "bad2.json": `{"auths":{"x":{"auth":"!!"}}}`, "bad3.json": `{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}`, "bad4.json": `{"auths":[]}`} {
		p := write(name, body)
		if _, err := LoadDockerConfig(p); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want ErrInvalidArgument naming the file", name, err)
		}
	}
}

func TestChain(t *testing.T) {
	ctx := context.Background()
	notImpl := CredentialsFunc(func(context.Context, string) (string, string, error) {
		return "", "", errdefs.ErrNotImplemented
	})
	c := Chain(nil, StaticCredentials{"a.io": {"u", "p"}}, notImpl, StaticCredentials{"b.io": {"v", "q"}})
	for host, want := range map[string]string{"a.io": "u", "b.io": "v"} {
		if u, _, err := c.Credentials(ctx, host); u != want || err != nil {
			t.Errorf("%s: %q %v", host, u, err)
		}
	}
	if _, _, err := c.Credentials(ctx, "c.io"); !errdefs.IsNotImplemented(err) {
		t.Errorf("c.io: %v, want the helper's ErrNotImplemented", err)
	}
}

// TestTLSErrors reaches a TLS registry under a name that is not loopback
// (the transport dials the test server whatever the name): an untrusted
// certificate is a clear error that points at --insecure-registry, and a
// plain-HTTP endpoint refuses to fall back silently.
func TestTLSErrors(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	defer plainSrv.Close()
	dialTo := func(addr string) http.RoundTripper {
		return &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{},
		}
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		addr     string
		insecure []string
		class    func(error) bool
		mention  []string
	}{
		{"untrusted certificate", tlsSrv.Listener.Addr().String(), nil, errdefs.IsFailedPrecondition,
			[]string{"TLS with registry registry.example:443 failed", "--insecure-registry registry.example:443", "certificate"}},
		{"plain http registry over https", plainSrv.Listener.Addr().String(), nil, errdefs.IsFailedPrecondition,
			[]string{"answered HTTPS with plain HTTP", "--insecure-registry registry.example:443"}},
		{"insecure allows plain http", plainSrv.Listener.Addr().String(), []string{"registry.example"}, errdefs.IsNotFound,
			[]string{"not found"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := fastOptions()
			opts.Transport = dialTo(tt.addr)
			opts.Insecure = tt.insecure
			_, err := NewResolver(opts).Resolve(ctx, mustRef(t, "registry.example:443/app"))
			if !tt.class(err) {
				t.Fatalf("Resolve = %v: wrong class", err)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestResolveRefusesEmptyReference(t *testing.T) {
	_, err := NewResolver(Options{}).Resolve(context.Background(), reference.Reference{})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("Resolve(zero) = %v", err)
	}
	_, err = NewResolver(Options{}).Pull(context.Background(), mustRef(t, "localhost:1/x"), nil, PullOptions{})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("Pull(nil store) = %v", err)
	}
}

func TestUnsupportedManifests(t *testing.T) {
	ctx := context.Background()
	reg := newFakeRegistry(t)
	schema1 := reg.addBlob([]byte(`{"schemaVersion":1,"name":"old","tag":"latest","fsLayers":[],"signatures":[]}`), MediaTypeDockerSchema1Signed)
	reg.tag("old", "latest", schema1.Digest)
	artifact := reg.addBlob([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":10},"layers":[]}`), ocispec.MediaTypeImageManifest)
	reg.tag("chart", "latest", artifact.Digest)
	for _, tt := range []struct{ repo, mention string }{{"old", "schema 1"}, {"chart", "not a container image"}} {
		_, err := NewResolver(fastOptions()).Pull(ctx, reg.ref(t, tt.repo), newStore(t, ""), PullOptions{})
		if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: %v, want ErrNotImplemented mentioning %q", tt.repo, err, tt.mention)
		}
	}
}

func TestCheckLogin(t *testing.T) {
	ctx := context.Background()
	for _, scheme := range []string{"bearer", "basic", "none"} {
		t.Run(scheme, func(t *testing.T) {
			reg := newFakeRegistry(t)
			reg.bearer, reg.basic = scheme == "bearer", scheme == "basic"
			reg.user, reg.pass = "alice", "s3cret"
			r := NewResolver(fastOptions())
			if err := r.CheckLogin(ctx, reg.domain(), "alice", "s3cret"); err != nil {
				t.Errorf("right password: %v", err)
			}
			err := r.CheckLogin(ctx, reg.domain(), "alice", "wrong")
			if scheme == "none" {
				if err != nil {
					t.Errorf("registry without auth: %v", err)
				}
				return
			}
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), `"alice"`) || !strings.Contains(err.Error(), reg.domain()) {
				t.Errorf("wrong password: %v, want ErrFailedPrecondition naming user and registry", err)
			}
		})
	}
	if err := NewResolver(Options{}).CheckLogin(ctx, "", "u", "p"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty registry: %v", err)
	}
}
