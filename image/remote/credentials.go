package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiff-containers/skiff/errdefs"
)

// Credentials supplies the username and secret (password or token) for a
// registry. host is the registry's domain as written in image references
// ("docker.io", "ghcr.io", "localhost:5000"). No credentials is ("", "",
// nil). An ErrNotImplemented error means the credentials exist but cannot
// be read by skiff (a docker credential helper); the resolver then tries
// anonymously and mentions the error if the registry refuses.
type Credentials interface {
	Credentials(ctx context.Context, host string) (username, secret string, err error)
}

// CredentialsFunc adapts a function to Credentials.
type CredentialsFunc func(ctx context.Context, host string) (username, secret string, err error)

// Credentials calls f.
func (f CredentialsFunc) Credentials(ctx context.Context, host string) (string, string, error) {
	return f(ctx, host)
}

// StaticCredentials maps a registry domain to a username and secret.
type StaticCredentials map[string][2]string

// Credentials returns the entry for host, if any.
func (s StaticCredentials) Credentials(_ context.Context, host string) (string, string, error) {
	c := s[normalizeAuthKey(host)]
	return c[0], c[1], nil
}

// Chain returns Credentials that asks each of cs in turn and returns the
// first non-empty answer. An ErrNotImplemented answer is remembered and
// returned only if no later source has credentials.
func Chain(cs ...Credentials) Credentials {
	return CredentialsFunc(func(ctx context.Context, host string) (string, string, error) {
		var notImpl error
		for _, c := range cs {
			if c == nil {
				continue
			}
			u, s, err := c.Credentials(ctx, host)
			if errdefs.IsNotImplemented(err) {
				if notImpl == nil {
					notImpl = err
				}
				continue
			}
			if err != nil {
				return "", "", err
			}
			if u != "" || s != "" {
				return u, s, nil
			}
		}
		return "", "", notImpl
	})
}

// DockerConfig is a docker client config file (~/.docker/config.json), the
// format `docker login` writes and skiff reads and writes too. Only the
// credential keys are interpreted; all other keys are kept as they are
// when the file is saved.
type DockerConfig struct {
	// Path is the file the config was loaded from and is saved to.
	Path string
	// Auths maps a registry ("docker.io", "https://index.docker.io/v1/",
	// "localhost:5000") to its credentials.
	Auths map[string]DockerAuth
	// CredsStore names the credential helper (docker-credential-<name>)
	// for all registries; skiff cannot use helpers yet.
	CredsStore string
	// CredHelpers names a credential helper per registry.
	CredHelpers map[string]string

	raw map[string]json.RawMessage
}

// DockerAuth is one entry of a docker config's "auths".
type DockerAuth struct {
	// Auth is base64("username:password").
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// DefaultDockerConfigPath returns $DOCKER_CONFIG/config.json, or
// ~/.docker/config.json.
func DefaultDockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".docker", "config.json")
}

// LoadDockerConfig reads a docker config file. A missing file is an empty
// config (no error); a malformed one is an ErrInvalidArgument error naming
// the file.
func LoadDockerConfig(path string) (*DockerConfig, error) {
	c := &DockerConfig{Path: path, Auths: map[string]DockerAuth{}, CredHelpers: map[string]string{}, raw: map[string]json.RawMessage{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registry credentials %s: %w", path, err)
	}
	bad := func(err error) error {
		return fmt.Errorf("%w: registry credentials file %s is malformed: %v; fix or remove it", errdefs.ErrInvalidArgument, path, err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, bad(err)
	}
	if v, ok := c.raw["auths"]; ok {
		if err := json.Unmarshal(v, &c.Auths); err != nil {
			return nil, bad(fmt.Errorf("auths: %w", err))
		}
		if c.Auths == nil {
			c.Auths = map[string]DockerAuth{}
		}
	}
	if v, ok := c.raw["credsStore"]; ok {
		if err := json.Unmarshal(v, &c.CredsStore); err != nil {
			return nil, bad(fmt.Errorf("credsStore: %w", err))
		}
	}
	if v, ok := c.raw["credHelpers"]; ok {
		if err := json.Unmarshal(v, &c.CredHelpers); err != nil {
			return nil, bad(fmt.Errorf("credHelpers: %w", err))
		}
		if c.CredHelpers == nil {
			c.CredHelpers = map[string]string{}
		}
	}
	for k, a := range c.Auths {
		if a.Auth == "" {
			continue
		}
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return nil, bad(fmt.Errorf("auths[%q].auth is not base64: %w", k, err))
		}
		if !strings.Contains(string(dec), ":") {
			return nil, bad(fmt.Errorf("auths[%q].auth is not base64 of user:password", k))
		}
	}
	return c, nil
}

// normalizeAuthKey maps the spellings of a registry in config files and
// references to one key: scheme and path dropped, docker hub's names
// folded into "docker.io".
func normalizeAuthKey(k string) string {
	k = strings.TrimSpace(k)
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
	}
	if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	k = strings.ToLower(k)
	switch k {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return k
}

// Credentials returns the username and password stored for host.
// Credential helpers (credsStore, credHelpers) and identity tokens are not
// supported yet: they yield an ErrNotImplemented error that says so.
func (c *DockerConfig) Credentials(_ context.Context, host string) (string, string, error) {
	want := normalizeAuthKey(host)
	for k, h := range c.CredHelpers {
		if normalizeAuthKey(k) == want && h != "" {
			return "", "", fmt.Errorf("%w: credentials for %s are kept by the credential helper docker-credential-%s (credHelpers in %s), which skiff cannot use yet: run 'skiff login %s' to store them for skiff", errdefs.ErrNotImplemented, host, h, c.Path, host)
		}
	}
	for k, a := range c.Auths {
		if normalizeAuthKey(k) != want {
			continue
		}
		if a.IdentityToken != "" {
			return "", "", fmt.Errorf("%w: credentials for %s in %s are an OAuth identity token, which skiff cannot use yet: run 'skiff login %s' with a username and password or access token", errdefs.ErrNotImplemented, host, c.Path, host)
		}
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return "", "", fmt.Errorf("%w: %s: auths[%q].auth is not base64", errdefs.ErrInvalidArgument, c.Path, k)
			}
			u, p, _ := strings.Cut(string(dec), ":")
			return u, p, nil
		}
		if a.Username != "" || a.Password != "" {
			return a.Username, a.Password, nil
		}
	}
	if c.CredsStore != "" {
		return "", "", fmt.Errorf("%w: credentials for %s may be kept by the credential helper docker-credential-%s (credsStore in %s), which skiff cannot use yet: run 'skiff login %s' to store them for skiff", errdefs.ErrNotImplemented, host, c.CredsStore, c.Path, host)
	}
	return "", "", nil
}

// Set stores username and secret for host (replacing any entry that
// spells the same registry differently). Call Save to write the file.
func (c *DockerConfig) Set(host, username, secret string) {
	c.Remove(host)
	key := normalizeAuthKey(host)
	if key == "docker.io" {
		key = "https://index.docker.io/v1/" // docker's spelling, so docker reads it too
	}
	c.Auths[key] = DockerAuth{Auth: base64.StdEncoding.EncodeToString([]byte(username + ":" + secret))}
}

// Remove deletes the credentials for host; it reports whether there were
// any.
func (c *DockerConfig) Remove(host string) bool {
	want := normalizeAuthKey(host)
	found := false
	for k := range c.Auths {
		if normalizeAuthKey(k) == want {
			delete(c.Auths, k)
			found = true
		}
	}
	return found
}

// Save writes the config to c.Path atomically with mode 0600, creating the
// directory if needed and keeping keys skiff does not interpret.
func (c *DockerConfig) Save() error {
	if c.Path == "" {
		return fmt.Errorf("%w: save registry credentials: no path", errdefs.ErrInvalidArgument)
	}
	raw := map[string]json.RawMessage{}
	for k, v := range c.raw {
		raw[k] = v
	}
	auths, err := json.Marshal(c.Auths)
	if err != nil {
		return err
	}
	raw["auths"] = auths
	b, err := json.MarshalIndent(raw, "", "\t")
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save registry credentials %s: %w", c.Path, err)
	}
	f, err := os.CreateTemp(dir, ".config.json.tmp*")
	if err != nil {
		return fmt.Errorf("save registry credentials %s: %w", c.Path, err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.Path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save registry credentials %s: %w", c.Path, err)
	}
	c.raw = raw
	return nil
}
