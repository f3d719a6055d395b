package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// The docker config file (~/.docker/config.json, or $DOCKER_CONFIG/config.json)
// holds registry credentials under "auths", keyed by server address, each
// {"auth": base64(user:password)} or with an "identitytoken". skiff reads
// and writes the same file so that `docker login` and `skiff login` share
// credentials. Other keys of the file are kept as they are.

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// dockerConfig is the parsed file: auths decoded, the rest kept raw.
type dockerConfig struct {
	path  string
	raw   map[string]json.RawMessage
	auths map[string]authEntry
}

func (e *Env) dockerConfigDir() string {
	if d := e.getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home := e.Home
	if home == "" {
		home = e.getenv("HOME")
	}
	return filepath.Join(home, ".docker")
}

func loadDockerConfig(env *Env) (*dockerConfig, error) {
	c := &dockerConfig{
		path:  filepath.Join(env.dockerConfigDir(), "config.json"),
		raw:   map[string]json.RawMessage{},
		auths: map[string]authEntry{},
	}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, fmt.Errorf("parse docker config %s: %w", c.path, err)
	}
	if a, ok := c.raw["auths"]; ok {
		if err := json.Unmarshal(a, &c.auths); err != nil {
			return nil, fmt.Errorf("parse docker config %s: auths: %w", c.path, err)
		}
	}
	return c, nil
}

// save writes the file atomically with mode 0600, as docker does.
func (c *dockerConfig) save() error {
	a, err := json.Marshal(c.auths)
	if err != nil {
		return err
	}
	c.raw["auths"] = a
	b, err := json.MarshalIndent(c.raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("save docker config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".config.json.*")
	if err != nil {
		return fmt.Errorf("save docker config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save docker config: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path)
}

// credHelpers reports whether the file delegates credentials to a helper
// (credsStore / credHelpers), which skiff does not run.
func (c *dockerConfig) credHelpers() bool {
	_, a := c.raw["credsStore"]
	_, b := c.raw["credHelpers"]
	return a || b
}

// hostOf turns a server address ("https://index.docker.io/v1/",
// "registry.example.com:5000/") into its host, docker's
// ConvertToHostname.
func hostOf(server string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(server, "http://"), "https://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "index.docker.io", "registry-1.docker.io", "docker.io":
		return dockerDomain
	}
	return s
}

// authKey is the key docker stores a server's credentials under.
func authKey(server string) string {
	if server == "" || hostOf(server) == dockerDomain {
		return dockerHubAuth
	}
	return hostOf(server)
}

// lookup returns the credentials for registry (a host, "docker.io" for
// Docker Hub), or nil.
func (c *dockerConfig) lookup(registry string) (*skiffv1.RegistryAuth, error) {
	want := hostOf(registry)
	entry, ok := c.auths[authKey(registry)]
	if !ok {
		for k, v := range c.auths {
			if hostOf(k) == want {
				entry, ok = v, true
				break
			}
		}
	}
	if !ok {
		return nil, nil
	}
	auth := &skiffv1.RegistryAuth{IdentityToken: entry.IdentityToken}
	if entry.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(entry.Auth)
		if err != nil {
			return nil, fmt.Errorf("docker config: credentials of %s: %w", registry, err)
		}
		user, pass, ok := strings.Cut(string(dec), ":")
		if !ok {
			return nil, fmt.Errorf("docker config: credentials of %s: not user:password", registry)
		}
		auth.Username, auth.Password = user, pass
	}
	return auth, nil
}

// registryAuth is the auth a pull of ref sends, from the docker config.
func (a *app) registryAuth(ref string) (*skiffv1.RegistryAuth, error) {
	c, err := loadDockerConfig(a.env)
	if err != nil {
		return nil, err
	}
	auth, err := c.lookup(registryOf(ref))
	if auth != nil {
		a.debugf("using credentials of %s for %s", registryOf(ref), ref)
	}
	return auth, err
}

func (a *app) loginCommand() *cobra.Command {
	var user, pass string
	var passStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Store credentials for a registry (used by pull)",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if pass != "" {
				fmt.Fprintln(a.env.Stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
				if passStdin {
					return &statusError{code: exitGeneral, msg: "--password and --password-stdin are mutually exclusive"}
				}
			}
			in := bufio.NewReader(a.env.Stdin)
			if passStdin {
				if user == "" {
					return &statusError{code: exitGeneral, msg: "Must provide --username with --password-stdin"}
				}
				b, err := io.ReadAll(in)
				if err != nil {
					return err
				}
				pass = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" {
				fmt.Fprint(a.env.Stdout, "Username: ")
				line, err := in.ReadString('\n')
				if err != nil && line == "" {
					return errors.New("error: cannot read username")
				}
				user = strings.TrimSpace(line)
			}
			if pass == "" {
				fmt.Fprint(a.env.Stdout, "Password: ")
				if f, ok := a.env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					b, err := term.ReadPassword(int(f.Fd()))
					fmt.Fprintln(a.env.Stdout)
					if err != nil {
						return err
					}
					pass = string(b)
				} else {
					line, _ := in.ReadString('\n')
					pass = strings.TrimRight(line, "\r\n")
				}
			}
			if user == "" {
				return &statusError{code: exitGeneral, msg: "Error: Non-null Username Required"}
			}
			if pass == "" {
				return &statusError{code: exitGeneral, msg: "Error: Password Required"}
			}
			ctx, cl, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := cl.images.Login(ctx, &skiffv1.LoginRequest{Server: server,
				Auth: &skiffv1.RegistryAuth{Username: user, Password: pass}}); err != nil {
				return a.fromDaemon(err)
			}
			c, err := loadDockerConfig(a.env)
			if err != nil {
				return err
			}
			if c.credHelpers() {
				fmt.Fprintf(a.env.Stderr, "WARNING! %s names a credential helper; skiff stores the credentials in the file instead.\n", c.path)
			}
			key := authKey(server)
			c.auths[key] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
			if err := c.save(); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stderr, "WARNING! Your credentials are stored unencrypted in '%s'.\n", c.path)
			fmt.Fprintln(a.env.Stdout, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "Username")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "Password")
	cmd.Flags().BoolVar(&passStdin, "password-stdin", false, "Take the password from stdin")
	return cmd
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove a registry's stored credentials",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			c, err := loadDockerConfig(a.env)
			if err != nil {
				return err
			}
			key := authKey(server)
			found := false
			for k := range c.auths {
				if k == key || hostOf(k) == hostOf(key) {
					delete(c.auths, k)
					found = true
				}
			}
			if !found {
				fmt.Fprintf(a.env.Stdout, "Not logged in to %s\n", key)
				return nil
			}
			fmt.Fprintf(a.env.Stdout, "Removing login credentials for %s\n", key)
			return c.save()
		},
	}
}
