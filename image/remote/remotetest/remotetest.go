// Package remotetest runs a real registry for tests: the CNCF distribution
// registry (Debian package docker-registry, /usr/bin/docker-registry) on a
// free loopback port with its storage in a temporary directory, and pushes
// images into it over the plain distribution API (monolithic blob uploads,
// manifest PUTs).
//
// It is imported only by tests. The registry speaks plain HTTP on
// 127.0.0.1, which skiff's resolver allows without flags, as docker does.
package remotetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Binary is where Debian's docker-registry package installs the registry.
const Binary = "/usr/bin/docker-registry"

// Registry is a running distribution registry.
type Registry struct {
	// Domain is its "127.0.0.1:port", as written in image references.
	Domain string
	// URL is "http://" + Domain.
	URL string
	// Root is its storage directory.
	Root string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
}

const configTemplate = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: skiff-remotetest
`

// Start starts a registry for the test and stops it (and removes its
// storage) when the test ends. It fails the test if the registry binary is
// missing (install the docker-registry package) or does not come up.
func Start(t testing.TB) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("the distribution registry is needed for this test: %v (apt-get install docker-registry)", err)
	}
	r, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

// Launch starts a registry storing its data under dir, for programs that
// are not tests (benchmarks); Close stops it.
func Launch(dir string) (*Registry, error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("the distribution registry is needed: %w (apt-get install docker-registry)", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 { // a free port may be taken between probe and use
		r, err := start(dir)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start %s: %w", Binary, lastErr)
}

// Close stops the registry (its storage stays in the directory given to
// Launch).
func (r *Registry) Close() { r.stop() }

func start(dir string) (*Registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	root := filepath.Join(dir, "storage-"+strings.ReplaceAll(addr, ":", "-"))
	cfg := filepath.Join(dir, "config-"+strings.ReplaceAll(addr, ":", "-")+".yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, configTemplate, root, addr), 0o600); err != nil {
		return nil, err
	}
	r := &Registry{Domain: addr, URL: "http://" + addr, Root: root, exited: make(chan struct{}), log: &bytes.Buffer{}}
	r.cmd = exec.Command(Binary, "serve", cfg)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.Env = []string{"PATH=/usr/bin:/bin", "OTEL_TRACES_EXPORTER=none"}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("registry exited: %s", r.log.String())
		default:
		}
		resp, err := http.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop()
	return nil, fmt.Errorf("registry on %s did not answer /v2/ within 15s: %s", addr, r.log.String())
}

func (r *Registry) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
}

// PushBlob uploads data as a blob of repo (monolithic upload: POST to
// start, PUT with the digest). desc must describe data.
func (r *Registry) PushBlob(ctx context.Context, repo string, desc ocispec.Descriptor, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusAccepted); err != nil {
		return fmt.Errorf("start upload of %s to %s: %w", desc.Digest, repo, err)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.String() == "" {
		return fmt.Errorf("start upload of %s to %s: bad Location %q", desc.Digest, repo, resp.Header.Get("Location"))
	}
	loc = resp.Request.URL.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = int64(len(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return fmt.Errorf("upload %s to %s: %w", desc.Digest, repo, err)
	}
	return nil
}

// PushManifest puts data (a manifest or index of type desc.MediaType) into
// repo under ref, a tag or desc's digest.
func (r *Registry) PushManifest(ctx context.Context, repo, ref string, desc ocispec.Descriptor, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", desc.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return fmt.Errorf("put manifest %s:%s: %w", repo, ref, err)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return fmt.Errorf("put manifest %s:%s: registry computed digest %s, want %s", repo, ref, got, desc.Digest)
	}
	return nil
}

func expect(resp *http.Response, code int) error {
	defer resp.Body.Close()
	if resp.StatusCode == code {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return errors.New("HTTP " + resp.Status + ": " + strings.TrimSpace(string(b)))
}
