package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/container"
	"github.com/skiff-containers/skiff/runtime/spec"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type globals struct {
	root      string
	logFile   string
	logFormat string
	debug     bool
	systemd   bool
	rootless  string
	criu      string // --criu: the criu binary, looked up on PATH
	logger    *slog.Logger
	closeLog  func()
}

// exitError carries an exit code out of a command; err, if set, is printed
// first.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return "exit " + strconv.Itoa(e.code)
}

func run(args []string) int {
	g := &globals{}
	root := newRoot(g)
	root.SetArgs(args)
	err := root.Execute()
	if g.closeLog != nil {
		defer g.closeLog()
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.err == nil {
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "skiff-runtime: %v\n", err)
	if g.logger != nil && g.logFile != "" {
		g.logger.Error(err.Error())
	}
	if ee != nil {
		return ee.code
	}
	return 1
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff-runtime",
		Short:         "skiff's OCI runtime: runs containers from OCI bundles, with runc's command line",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.setup()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.root, "root", container.DefaultRoot, "directory for the state of containers")
	pf.StringVar(&g.logFile, "log", "", "write the runtime's log to this file (default: stderr for errors only)")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.BoolVar(&g.debug, "debug", false, "log debug messages")
	pf.BoolVar(&g.systemd, "systemd-cgroup", false, "manage cgroups through systemd (not supported: refused)")
	pf.StringVar(&g.rootless, "rootless", "auto", "rootless mode: true, false or auto (only false/auto supported: skiff-runtime must run as root)")
	pf.StringVar(&g.criu, "criu", "criu", "path to criu (checkpoint and restore are not implemented: they only report whether CRIU could work here)")
	root.AddCommand(
		specCmd(), createCmd(g), startCmd(g), runCmd(g), stateCmd(g),
		killCmd(g), deleteCmd(g), listCmd(g), execCmd(g),
		pauseCmd(g), resumeCmd(g), psCmd(g), updateCmd(g), eventsCmd(g), featuresCmd(),
		checkpointCmd(g), restoreCmd(g),
	)
	return root
}

func (g *globals) setup() error {
	if g.logFormat != "text" && g.logFormat != "json" {
		return fmt.Errorf("--log-format %q: must be text or json: %w", g.logFormat, errdefs.ErrInvalidArgument)
	}
	if g.systemd {
		return fmt.Errorf("--systemd-cgroup: the systemd cgroup driver is not supported by skiff-runtime; use the default cgroupfs driver: %w", errdefs.ErrNotImplemented)
	}
	if g.rootless == "true" {
		return fmt.Errorf("--rootless=true: rootless containers are not supported by skiff-runtime; run it as root: %w", errdefs.ErrNotImplemented)
	}
	level := slog.LevelInfo
	if g.debug {
		level = slog.LevelDebug
	}
	// Without --log, warnings (a failed poststart hook, ...) go to stderr.
	var w io.Writer = os.Stderr
	if !g.debug {
		level = slog.LevelWarn
	}
	if g.logFile != "" {
		level = slog.LevelInfo
		if g.debug {
			level = slog.LevelDebug
		}
		f, err := os.OpenFile(g.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return fmt.Errorf("open --log %s: %w", g.logFile, err)
		}
		w = f
		g.closeLog = func() { f.Close() }
	}
	// Levels are spelled as runc's (logrus): "error", "warning", ...;
	// containerd recognises a runtime's failure by "level":"error".
	debug := g.debug
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.LevelKey:
			l, _ := a.Value.Any().(slog.Level)
			name := strings.ToLower(l.String())
			if l == slog.LevelWarn {
				name = "warning"
			}
			return slog.String(slog.LevelKey, name)
		case slog.TimeKey:
			if debug {
				return slog.String("time", a.Value.Time().Format("15:04:05.000000"))
			}
		}
		return a
	}}
	if g.logFormat == "json" {
		g.logger = slog.New(slog.NewJSONHandler(w, opts))
	} else {
		g.logger = slog.New(slog.NewTextHandler(w, opts))
	}
	return nil
}

func (g *globals) runtime() *container.Runtime {
	// SKIFF_RUNTIME_EXEC_INIT=1 starts every init as a second Go program,
	// the way that covers every config (runtime/cloneinit covers most).
	execInit := os.Getenv("SKIFF_RUNTIME_EXEC_INIT") == "1"
	return &container.Runtime{Root: g.root, Logger: g.logger, ExecInit: execInit}
}

func exactArgs(n int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s: expects %s, got %d argument(s): %w", cmd.Name(), usage, len(args), errdefs.ErrInvalidArgument)
		}
		return nil
	}
}

func specCmd() *cobra.Command {
	var bundle string
	var rootless bool
	cmd := &cobra.Command{
		Use:   "spec",
		Short: "write a default config.json (runc's) into the bundle",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			def := spec.Default()
			if rootless {
				def = spec.DefaultRootless(uint32(os.Getuid()), uint32(os.Getgid()))
			}
			path := spec.ConfigFile
			if bundle != "" {
				path = bundle + "/" + spec.ConfigFile
			}
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists; remove it first: %w", path, errdefs.ErrAlreadyExists)
			}
			b, err := json.MarshalIndent(def, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, b, 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", "", "directory to write config.json into")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "a spec for a rootless container (as runc's; running it rootless is not supported)")
	return cmd
}

type createFlags struct {
	bundle, pidFile, consoleSocket string
	noPivot, noNewKeyring          bool
	preserveFDs                    int
}

func (f *createFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.bundle, "bundle", "b", ".", "path to the bundle (the directory holding config.json)")
	fl.StringVar(&f.pidFile, "pid-file", "", "write the container init's pid to this file")
	fl.StringVar(&f.consoleSocket, "console-socket", "", "unix socket to send the pty master to (with process.terminal)")
	fl.BoolVar(&f.noPivot, "no-pivot", false, "use MS_MOVE and chroot instead of pivot_root (for a rootfs on a ramdisk)")
	fl.BoolVar(&f.noNewKeyring, "no-new-keyring", false, "keep the caller's session keyring")
	fl.IntVar(&f.preserveFDs, "preserve-fds", 0, "pass this many fds (from 3 on) to the container")
}

func (f *createFlags) opts() (container.CreateOpts, error) {
	if f.preserveFDs < 0 {
		return container.CreateOpts{}, fmt.Errorf("--preserve-fds %d: must not be negative: %w", f.preserveFDs, errdefs.ErrInvalidArgument)
	}
	return container.CreateOpts{
		Bundle: f.bundle, PidFile: f.pidFile, ConsoleSocket: f.consoleSocket,
		NoPivot: f.noPivot, NoNewKeyring: f.noNewKeyring, PreserveFDs: f.preserveFDs,
	}, nil
}

func createCmd(g *globals) *cobra.Command {
	f := &createFlags{}
	cmd := &cobra.Command{
		Use:   "create [flags] CONTAINER_ID",
		Short: "create a container: its init waits in its namespaces until start",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.opts()
			if err != nil {
				return err
			}
			return g.runtime().Create(cmd.Context(), args[0], opts)
		},
	}
	f.add(cmd)
	return cmd
}

func startCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start CONTAINER_ID",
		Short: "start a created container: run its user program",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runtime().Start(cmd.Context(), args[0])
		},
	}
}

func runCmd(g *globals) *cobra.Command {
	f := &createFlags{}
	var detach, keep, noSubreaper bool
	cmd := &cobra.Command{
		Use:   "run [flags] CONTAINER_ID",
		Short: "create and start a container; in the foreground, wait for it and exit with its status",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.opts()
			if err != nil {
				return err
			}
			code, err := g.runtime().Run(cmd.Context(), args[0], opts, detach)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the container is running")
	cmd.Flags().BoolVar(&keep, "keep", false, "accepted for runc compatibility")
	cmd.Flags().BoolVar(&noSubreaper, "no-subreaper", false, "accepted for runc compatibility")
	return cmd
}

func stateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "state CONTAINER_ID",
		Short: "print the state of a container as JSON",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.runtime().State(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				return err
			}
			fmt.Println(string(b))
			return nil
		},
	}
}

func killCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [--all] CONTAINER_ID [SIGNAL]",
		Short: "send a signal (default SIGTERM) to the container's init",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("kill: expects a container id and an optional signal, got %d argument(s): %w", len(args), errdefs.ErrInvalidArgument)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				s, err := parseSignal(args[1])
				if err != nil {
					return err
				}
				sig = s
			}
			return g.runtime().Kill(cmd.Context(), args[0], sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "send the signal to every process in the container")
	return cmd
}

// parseSignal accepts a number, a name, or a name without SIG: 9, KILL, SIGKILL.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d is out of range (1-64): %w", n, errdefs.ErrInvalidArgument)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q; use a name like TERM or KILL, or a number: %w", s, errdefs.ErrInvalidArgument)
}

func deleteCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [--force] CONTAINER_ID",
		Short: "delete a container's state, cgroup and (for a created one) its init",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := g.runtime().Delete(cmd.Context(), args[0], force)
			if force && errdefs.IsNotFound(err) {
				// As runc: forcing the deletion of what is not there is
				// not an error.
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return cmd
}

func listCmd(g *globals) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the containers under --root",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: must be table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			states, err := g.runtime().List(cmd.Context())
			if err != nil {
				return err
			}
			return printList(os.Stdout, states, quiet, format)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the ids")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return cmd
}

func printList(w io.Writer, states []*container.State, quiet bool, format string) error {
	if quiet {
		for _, s := range states {
			fmt.Fprintln(w, s.ID)
		}
		return nil
	}
	if format == "json" {
		if states == nil {
			states = []*container.State{}
		}
		b, err := json.Marshal(states)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(w, 12, 1, 3, ' ', 0)
	fmt.Fprint(tw, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
	for _, s := range states {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
	}
	return tw.Flush()
}
