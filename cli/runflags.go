package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/errdefs"
)

// containerFlags are the flags of `run` and `create` (docker's).
type containerFlags struct {
	detach      bool // run only
	rm          bool
	interactive bool
	tty         bool
	readOnly    bool
	sigProxy    bool // run only
	name        string
	workdir     string
	user        string
	entrypoint  string
	runtime     string
	hostname    string
	network     string
	stopSignal  string
	stopTimeout int
	restart     string
	platform    string
	pull        string
	env         []string
	envFiles    []string
	labels      []string
	volumes     []string     // -v
	mounts      []string     // --mount
	tmpfs       []string     // --tmpfs
	net         networkFlags // -p, -P, --dns, --add-host, --network-alias, --ip (network.go)

	// --memory, --cpus, --privileged, --cap-add, --device, ... (secflags.go)
	sec securityFlags
}

func addContainerFlags(f *pflag.FlagSet, o *containerFlags, run bool) {
	f.SetInterspersed(false) // flags after IMAGE belong to the command
	if run {
		f.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container ID")
		f.BoolVar(&o.sigProxy, "sig-proxy", true, "Proxy received signals to the process")
	}
	f.BoolVar(&o.rm, "rm", false, "Automatically remove the container when it exits")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.BoolVar(&o.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	f.StringVar(&o.name, "name", "", "Assign a name to the container")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	f.StringVar(&o.runtime, "runtime", "", "Runtime to use for this container")
	f.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	f.StringVar(&o.network, "network", "", "Connect a container to a network (bridge, none, host, NAME, container:NAME|ID)")
	f.StringVar(&o.network, "net", "", "Connect a container to a network")
	f.MarkHidden("net")
	f.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	f.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	f.StringVar(&o.restart, "restart", "no", "Restart policy to apply when a container exits")
	f.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	f.StringVar(&o.pull, "pull", "missing", `Pull image before running ("always", "missing", "never")`)
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "Read in a file of environment variables")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "Set meta data on a container")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume")
	f.StringArrayVar(&o.mounts, "mount", nil, "Attach a filesystem mount to the container")
	f.StringArrayVar(&o.tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	addNetworkFlags(f, &o.net)
	addSecurityFlags(f, &o.sec)
	// -h is docker's --hostname; help stays reachable as --help.
	f.Bool("help", false, "Print usage")
}

// invalid is a bad argument found by the client (exit 125 for run/create);
// its text is only the message, its class errdefs.ErrInvalidArgument.
func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return errdefs.ErrInvalidArgument }

// toConfig builds the request's ContainerConfig. changed tells which flags
// the user set; lookup reads the client's environment.
func (o *containerFlags) toConfig(image string, cmd []string, changed func(string) bool, lookup func(string) (string, bool)) (*skiffv1.ContainerConfig, error) {
	env, err := parseEnv(o.envFiles, o.env, lookup)
	if err != nil {
		return nil, err
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return nil, err
	}
	restart, err := parseRestartPolicy(o.restart)
	if err != nil {
		return nil, err
	}
	if o.rm && restart != nil && restart.Name != "no" {
		return nil, invalid("conflicting options: cannot specify both --restart and --rm")
	}
	if o.network == "container:" {
		return nil, invalid("invalid network mode %q: name a container (container:NAME|ID)", o.network)
	}
	switch o.pull {
	case "missing", "always", "never":
	default:
		return nil, invalid("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", o.pull)
	}
	mounts, err := parseMounts(o.volumes, o.mounts, o.tmpfs, filepath.Abs)
	if err != nil {
		return nil, err
	}
	stopSignal := ""
	if o.stopSignal != "" {
		if stopSignal, err = parseSignal(o.stopSignal); err != nil {
			return nil, err
		}
	}
	c := &skiffv1.ContainerConfig{
		Name:          o.name,
		Image:         image,
		Cmd:           cmd,
		Env:           env,
		WorkingDir:    o.workdir,
		User:          o.user,
		Tty:           o.tty,
		OpenStdin:     o.interactive,
		Runtime:       o.runtime,
		Hostname:      o.hostname,
		ReadOnly:      o.readOnly,
		NetworkMode:   o.network,
		Labels:        labels,
		AutoRemove:    o.rm,
		StopSignal:    stopSignal,
		StopTimeout:   -1,
		RestartPolicy: restart,
		Mounts:        mounts,
	}
	if err := o.net.apply(c, o.network); err != nil {
		return nil, err
	}
	if err := o.sec.apply(c, changed); err != nil {
		return nil, err
	}
	if changed("entrypoint") {
		// docker: --entrypoint "" clears the image's entrypoint; any other
		// value is one program (not split on spaces).
		c.EntrypointSet = true
		if o.entrypoint != "" {
			c.Entrypoint = []string{o.entrypoint}
		}
	}
	if changed("stop-timeout") {
		c.StopTimeout = int32(o.stopTimeout)
	}
	return c, nil
}

// parseEnv merges --env-file files then -e values, in order, as docker
// does. A bare NAME takes the client's value, and is dropped when the
// client has none.
func parseEnv(files, vals []string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, invalid("env file: %v", err)
		}
		lines, err := parseEnvFile(b, lookup)
		if err != nil {
			return nil, invalid("invalid env file (%s): %v", f, err)
		}
		out = append(out, lines...)
	}
	for _, v := range vals {
		k, _, hasValue := strings.Cut(v, "=")
		if k == "" {
			return nil, invalid("invalid environment variable: %s", v)
		}
		if hasValue {
			out = append(out, v)
			continue
		}
		if lookup != nil {
			if val, ok := lookup(k); ok {
				out = append(out, k+"="+val)
			}
		}
	}
	return out, nil
}

// parseEnvFile is docker's env file format: leading white space trimmed,
// "#" comments and empty lines skipped, KEY=VALUE kept (quotes around the
// whole value removed), a bare KEY looked up in the client's environment.
func parseEnvFile(b []byte, lookup func(string) (string, bool)) ([]string, error) {
	b = bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF})
	var out []string
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		line = strings.TrimLeft(line, " \t\v\f")
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, hasValue := strings.Cut(line, "=")
		if key == "" {
			return nil, fmt.Errorf("no variable name on line %d: '%s'", n+1, line)
		}
		if strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("variable '%s' contains whitespaces", key)
		}
		if hasValue {
			out = append(out, key+"="+trimQuotes(value))
			continue
		}
		if lookup != nil {
			if v, ok := lookup(key); ok {
				out = append(out, key+"="+v)
			}
		}
	}
	return out, nil
}

func trimQuotes(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

func parseLabels(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range vals {
		k, val, _ := strings.Cut(v, "=")
		if strings.TrimSpace(k) == "" {
			return nil, invalid("invalid label '%s': empty name", v)
		}
		out[k] = val
	}
	return out, nil
}

// parseRestartPolicy parses docker's --restart value: no, always,
// unless-stopped, on-failure[:max-retries]. "" is unset.
func parseRestartPolicy(s string) (*skiffv1.RestartPolicy, error) {
	if s == "" {
		return nil, nil
	}
	name, count, hasCount := strings.Cut(s, ":")
	p := &skiffv1.RestartPolicy{Name: name}
	switch name {
	case "no", "always", "unless-stopped":
		if hasCount {
			return nil, invalid("invalid restart policy format: maximum retry count cannot be used with restart policy '%s'", name)
		}
	case "on-failure":
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil {
				return nil, invalid("invalid restart policy format: maximum retry count must be an integer")
			}
			if n < 0 {
				return nil, invalid("invalid restart policy format: maximum retry count cannot be negative")
			}
			p.MaxRetries = int32(n)
		}
	default:
		return nil, invalid("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", name)
	}
	return p, nil
}

// parseSignal accepts docker's signal spellings ("KILL", "sigkill",
// "SIGKILL", "9") and returns "SIGKILL" or the number.
func parseSignal(s string) (string, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return "", invalid("invalid signal: %s", s)
		}
		return s, nil
	}
	name := "SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if unix.SignalNum(name) == 0 {
		return "", invalid("invalid signal: %s", s)
	}
	return name, nil
}
