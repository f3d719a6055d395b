package shim

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/proto"
)

// Config is what the engine tells a shim on its command line.
type Config struct {
	// ID is the container's id, passed to the runtime.
	ID string
	// Bundle is the OCI bundle directory.
	Bundle string
	// Runtime is the OCI runtime binary (skiff-runtime, runc, crun), a path
	// or a name looked up on PATH.
	Runtime string
	// RuntimeRoot is the runtime's --root; empty for its default.
	RuntimeRoot string
	// RuntimeArgs are extra global flags of the runtime, before the command.
	RuntimeArgs []string
	// StateDir holds the shim's socket, the exit file, the init's pid file,
	// and the shim's own log. It is created (0700) if missing.
	StateDir string
	// LogPath is the container log, in the CRI format; appended to.
	LogPath string
	// Terminal gives the container a pty (config.json must have
	// process.terminal true): the runtime hands its master over a console
	// socket.
	Terminal bool
	// Stdin gives the container a stdin the shim can write to (a pipe, or
	// the pty); without it the container's stdin is /dev/null.
	Stdin bool
	// Debug logs at debug level in the shim log.
	Debug bool
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// ParseArgs parses the shim's command line into a Config. Errors are of
// class errdefs.ErrInvalidArgument; usage goes to usage (may be io.Discard).
func ParseArgs(args []string, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("skiff-shim", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.ID, "id", "", "container id (required)")
	fs.StringVar(&c.Bundle, "bundle", "", "OCI bundle directory (required)")
	fs.StringVar(&c.Runtime, "runtime", "skiff-runtime", "OCI runtime binary (runc's command line)")
	fs.StringVar(&c.RuntimeRoot, "runtime-root", "", "the runtime's --root (default: the runtime's own)")
	fs.Var((*stringList)(&c.RuntimeArgs), "runtime-arg", "extra global flag for the runtime (repeatable)")
	fs.StringVar(&c.StateDir, "state", "", "shim state directory: socket, exit file, shim log (required)")
	fs.StringVar(&c.LogPath, "log", "", "container log file, CRI format (required)")
	fs.BoolVar(&c.Terminal, "tty", false, "give the container a pseudo-terminal")
	fs.BoolVar(&c.Stdin, "stdin", false, "keep the container's stdin open for attach")
	fs.BoolVar(&c.Debug, "debug", false, "debug-level shim log")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("skiff-shim: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("skiff-shim: %w: unexpected arguments %q (every input is a flag)", errdefs.ErrInvalidArgument, fs.Args())
	}
	return c, c.Validate()
}

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = 107

// Validate checks c.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("skiff-shim: container %q: %w: "+format, append([]any{c.ID, errdefs.ErrInvalidArgument}, a...)...)
	}
	switch {
	case c.ID == "":
		return bad("--id is required")
	case strings.ContainsAny(c.ID, "/\x00") || c.ID == "." || c.ID == "..":
		return bad("--id %q must not contain '/' or be . or ..", c.ID)
	case c.Bundle == "":
		return bad("--bundle is required")
	case c.Runtime == "":
		return bad("--runtime is required")
	case c.StateDir == "":
		return bad("--state is required")
	case c.LogPath == "":
		return bad("--log is required")
	}
	for name, p := range map[string]string{"--bundle": c.Bundle, "--state": c.StateDir, "--log": c.LogPath} {
		if !filepath.IsAbs(p) {
			return bad("%s %q must be an absolute path", name, p)
		}
	}
	if c.RuntimeRoot != "" && !filepath.IsAbs(c.RuntimeRoot) {
		return bad("--runtime-root %q must be an absolute path", c.RuntimeRoot)
	}
	if sock := filepath.Join(c.StateDir, proto.SocketName); len(sock) > maxSocketPath {
		return bad("socket path %s is %d bytes, longer than a unix socket address holds (%d): use a shorter --state", sock, len(sock), maxSocketPath)
	}
	return nil
}
