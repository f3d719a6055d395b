package shim

import (
	"io"
	"path"
	"strings"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
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
	// ParkAfter is how long the shim waits, with no request in progress,
	// no attached client and no exec'd process, before it execs its idle
	// monitor (skiff-shim-idle, beside it) in its place. 0 never parks.
	ParkAfter time.Duration

	parkAfterErr string   // a --park-after that did not parse
	args         []string // the command line, for the idle monitor to exec the shim again
}

// DefaultParkAfter is the default of --park-after.
const DefaultParkAfter = 5 * time.Second

// flagDef is one flag of the command line: a string (set) or a bool
// (setBool) flag.
type flagDef struct {
	name, arg, usage string
	set              func(string)
	setBool          func(bool)
}

func (c *Config) flags() []flagDef {
	str := func(p *string) func(string) { return func(v string) { *p = v } }
	boolean := func(p *bool) func(bool) { return func(v bool) { *p = v } }
	return []flagDef{
		{name: "id", arg: "string", usage: "container id (required)", set: str(&c.ID)},
		{name: "bundle", arg: "string", usage: "OCI bundle directory (required)", set: str(&c.Bundle)},
		{name: "runtime", arg: "string", usage: "OCI runtime binary (runc's command line) (default \"skiff-runtime\")", set: str(&c.Runtime)},
		{name: "runtime-root", arg: "string", usage: "the runtime's --root (default: the runtime's own)", set: str(&c.RuntimeRoot)},
		{name: "runtime-arg", arg: "value", usage: "extra global flag for the runtime (repeatable)", set: func(v string) { c.RuntimeArgs = append(c.RuntimeArgs, v) }},
		{name: "state", arg: "string", usage: "shim state directory: socket, exit file, shim log (required)", set: str(&c.StateDir)},
		{name: "log", arg: "string", usage: "container log file, CRI format (required)", set: str(&c.LogPath)},
		{name: "tty", usage: "give the container a pseudo-terminal", setBool: boolean(&c.Terminal)},
		{name: "stdin", usage: "keep the container's stdin open for attach", setBool: boolean(&c.Stdin)},
		{name: "debug", usage: "debug-level shim log", setBool: boolean(&c.Debug)},
		{name: "park-after", arg: "duration", usage: "idle time after which the shim hands the container to skiff-shim-idle (0: never) (default 5s)", set: func(v string) {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				c.parkAfterErr = "--park-after " + quote(v) + " is not a duration such as 5s or 0"
				return
			}
			c.ParkAfter, c.parkAfterErr = d, ""
		}},
	}
}

// ParseArgs parses the shim's command line into a Config, with the syntax
// of package flag (-name value, --name=value, bool flags without a value).
// Errors are of class errdefs.ErrInvalidArgument; the error and the usage
// go to usage (may be io.Discard).
func ParseArgs(args []string, usage io.Writer) (Config, error) {
	c := Config{Runtime: "skiff-runtime", ParkAfter: DefaultParkAfter}
	defs := c.flags()
	fail := func(msg string) (Config, error) {
		io.WriteString(usage, msg+"\n")
		printUsage(usage, defs)
		return c, newError(errdefs.ErrInvalidArgument, "skiff-shim: "+errdefs.ErrInvalidArgument.Error()+": "+msg)
	}
	for len(args) > 0 {
		s := args[0]
		if len(s) < 2 || s[0] != '-' {
			break
		}
		args = args[1:]
		name := s[1:]
		if name[0] == '-' {
			name = name[1:]
			if name == "" { // "--" ends the flags
				break
			}
		}
		if name == "" || name[0] == '-' || name[0] == '=' {
			return fail("bad flag syntax: " + s)
		}
		name, value, hasValue := strings.Cut(name, "=")
		var def *flagDef
		for i := range defs {
			if defs[i].name == name {
				def = &defs[i]
			}
		}
		if def == nil {
			if name == "help" || name == "h" {
				printUsage(usage, defs)
				return c, newError(errdefs.ErrInvalidArgument, "skiff-shim: "+errdefs.ErrInvalidArgument.Error()+": flag: help requested")
			}
			return fail("flag provided but not defined: -" + name)
		}
		if def.setBool != nil {
			v := true
			if hasValue {
				var ok bool
				if v, ok = parseBool(value); !ok {
					return fail("invalid boolean value " + quote(value) + " for -" + name + ": parse error")
				}
			}
			def.setBool(v)
			continue
		}
		if !hasValue {
			if len(args) == 0 {
				return fail("flag needs an argument: -" + name)
			}
			value, args = args[0], args[1:]
		}
		def.set(value)
	}
	if len(args) > 0 {
		return c, newError(errdefs.ErrInvalidArgument, "skiff-shim: "+errdefs.ErrInvalidArgument.Error()+": unexpected arguments "+quoteList(args)+" (every input is a flag)")
	}
	return c, c.Validate()
}

func printUsage(w io.Writer, defs []flagDef) {
	var b strings.Builder
	b.WriteString("Usage of skiff-shim:\n")
	for _, d := range defs {
		b.WriteString("  -" + d.name)
		if d.arg != "" {
			b.WriteString(" " + d.arg)
		}
		b.WriteString("\n    \t" + d.usage + "\n")
	}
	io.WriteString(w, b.String())
}

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = 107

// Validate checks c.
func (c Config) Validate() error {
	bad := func(msg string) error {
		return newError(errdefs.ErrInvalidArgument, "skiff-shim: container "+quote(c.ID)+": "+errdefs.ErrInvalidArgument.Error()+": "+msg)
	}
	switch {
	case c.ID == "":
		return bad("--id is required")
	case strings.ContainsAny(c.ID, "/\x00") || c.ID == "." || c.ID == "..":
		return bad("--id " + quote(c.ID) + " must not contain '/' or be . or ..")
	case c.Bundle == "":
		return bad("--bundle is required")
	case c.Runtime == "":
		return bad("--runtime is required")
	case c.StateDir == "":
		return bad("--state is required")
	case c.LogPath == "":
		return bad("--log is required")
	case c.parkAfterErr != "":
		return bad(c.parkAfterErr)
	}
	for _, f := range [...]struct{ name, path string }{{"--bundle", c.Bundle}, {"--state", c.StateDir}, {"--log", c.LogPath}} {
		if !path.IsAbs(f.path) {
			return bad(f.name + " " + quote(f.path) + " must be an absolute path")
		}
	}
	if c.RuntimeRoot != "" && !path.IsAbs(c.RuntimeRoot) {
		return bad("--runtime-root " + quote(c.RuntimeRoot) + " must be an absolute path")
	}
	if sock := joinPath(c.StateDir, socketName); len(sock) > maxSocketPath {
		return bad("socket path " + sock + " is " + itoa(len(sock)) + " bytes, longer than a unix socket address holds (" + itoa(maxSocketPath) + "): use a shorter --state")
	}
	return nil
}

// parseBool parses a bool flag's value as strconv.ParseBool does.
func parseBool(s string) (v, ok bool) {
	switch s {
	case "1", "t", "T", "true", "TRUE", "True":
		return true, true
	case "0", "f", "F", "false", "FALSE", "False":
		return false, true
	}
	return false, false
}
