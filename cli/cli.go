// Package cli is the command line of skiff: docker's verbs, flags, output
// formats and exit codes, implemented as a client of skiffd's skiff.v1 gRPC
// API over its unix socket.
//
// It owns parsing the command line, reading the user's docker config file
// (registry credentials), rendering tables, JSON and progress, driving the
// local terminal (raw mode, resize, signal forwarding) and mapping errors
// to docker's exit codes. It talks to the daemon only through the
// generated skiff.v1 client: it must not import the engine, the server,
// the shim or the runtime, and it keeps no package-level mutable state
// (streams and environment come in through Env), so that every command
// can be run in-process by tests.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/errdefs/errgrpc"
)

// DefaultSocket is where skiffd listens unless told otherwise.
const DefaultSocket = "/run/skiff/skiffd.sock"

// Version is the client's version, shown by `skiff version`.
const Version = "0.1.0-dev"

// Exit codes docker's CLI uses for its own failures.
const (
	exitGeneral = 1   // a command failed (client or daemon error)
	exitEngine  = 125 // run/create/start: the daemon failed, or bad usage
)

// Env is the world one run of the CLI sees: its standard streams and the
// client's environment. Tests fill it with buffers and a map.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// LookupEnv reads the client's environment (os.LookupEnv in main).
	LookupEnv func(key string) (string, bool)
	// Home is the user's home directory, for ~/.docker/config.json; empty
	// means $HOME.
	Home string
}

func (e *Env) getenv(key string) string {
	if e.LookupEnv == nil {
		return ""
	}
	v, _ := e.LookupEnv(key)
	return v
}

func (e *Env) lookupEnv(key string) (string, bool) {
	if e.LookupEnv == nil {
		return "", false
	}
	return e.LookupEnv(key)
}

// Main runs the CLI with the process's streams and environment and returns
// the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	home, _ := os.UserHomeDir()
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, LookupEnv: os.LookupEnv, Home: home}
	return Run(context.Background(), env, args)
}

// Run runs one command line (without the program name) in env and returns
// the exit code, as docker would.
func Run(ctx context.Context, env *Env, args []string) int {
	a := &app{env: env}
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	return a.report(err)
}

// app holds what the commands of one run share: the environment, the
// global flags and the daemon connection.
type app struct {
	env       *Env
	socket    string
	namespace string
	debug     bool

	// cmdPath is the command that ran ("run", "image ls"), for messages.
	cmdPath string
	// engineExit makes daemon failures exit 125 (run, create, start).
	engineExit bool
	// detachKeys is --detach-keys of run and start (exec.go).
	detachKeys string

	conn *grpc.ClientConn
}

func (a *app) close() {
	if a.conn != nil {
		a.conn.Close()
	}
}

// statusError ends the CLI with code after printing msg (if any).
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// usageError is a bad command line: docker exits 125 for those.
func usageError(cmd *cobra.Command, err error) error {
	return &statusError{code: exitEngine, msg: fmt.Sprintf("%s\nSee '%s --help'.", err, cmd.CommandPath())}
}

// connectError is a daemon that cannot be reached.
type connectError struct{ socket string }

func (e *connectError) Error() string {
	return fmt.Sprintf("cannot connect to skiffd at %s: is skiffd running? (start it with: skiffd)", e.socket)
}

// daemonError is an error the daemon returned, already mapped back to its
// errdefs class (and exit code, if it carried one).
type daemonError struct{ err error }

func (e *daemonError) Error() string { return "Error response from daemon: " + e.err.Error() }
func (e *daemonError) Unwrap() error { return e.err }

// fromDaemon turns an RPC error into a connectError or a daemonError.
func (a *app) fromDaemon(err error) error {
	if err == nil {
		return nil
	}
	var de *daemonError
	var ce *connectError
	if errors.As(err, &de) || errors.As(err, &ce) {
		return err
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return &connectError{socket: a.socket}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &daemonError{err: errgrpc.FromGRPC(err)}
}

// report prints err the way docker does and returns the exit code.
func (a *app) report(err error) int {
	if err == nil {
		return 0
	}
	var se *statusError
	if errors.As(err, &se) {
		if se.msg != "" {
			fmt.Fprintln(a.env.Stderr, se.msg)
		}
		return se.code
	}
	if errors.Is(err, context.Canceled) {
		return exitGeneral
	}
	code := exitGeneral
	if a.engineExit {
		code = exitEngine
	}
	if c, ok := errdefs.ExitCode(err); ok {
		code = c
	}
	msg := err.Error()
	if a.engineExit {
		// docker: "docker: Error response from daemon: …." + hint.
		if !strings.HasSuffix(msg, ".") {
			msg += "."
		}
		fmt.Fprintf(a.env.Stderr, "skiff: %s\nSee 'skiff %s --help'.\n", msg, a.cmdPath)
		return code
	}
	var de *daemonError
	var ce *connectError
	if errors.As(err, &de) || errors.As(err, &ce) {
		fmt.Fprintln(a.env.Stderr, msg)
	} else {
		fmt.Fprintln(a.env.Stderr, "Error: "+msg)
	}
	return code
}

// dial connects lazily to skiffd; the first call on a missing socket fails
// with Unavailable, which fromDaemon turns into the connect error.
func (a *app) dial() (*grpc.ClientConn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	if fi, err := os.Stat(a.socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, &connectError{socket: a.socket}
	}
	conn, err := grpc.NewClient("unix://"+a.socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to skiffd at %s: %w", a.socket, err)
	}
	a.conn = conn
	return conn, nil
}

// clients bundles the three services.
type clients struct {
	images     skiffv1.ImagesClient
	containers skiffv1.ContainersClient
	system     skiffv1.SystemClient
}

// connect returns the clients and a context working in the namespace.
func (a *app) connect(ctx context.Context) (context.Context, *clients, error) {
	conn, err := a.dial()
	if err != nil {
		return ctx, nil, err
	}
	ctx = skiffv1.WithNamespace(ctx, a.namespace)
	return ctx, &clients{
		images:     skiffv1.NewImagesClient(conn),
		containers: skiffv1.NewContainersClient(conn),
		system:     skiffv1.NewSystemClient(conn),
	}, nil
}

func (a *app) debugf(format string, args ...any) {
	if a.debug {
		fmt.Fprintf(a.env.Stderr, "DEBU[skiff] "+format+"\n", args...)
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff [OPTIONS] COMMAND",
		Short:         "A container stack with docker's verbs",
		SilenceUsage:  true,
		SilenceErrors: true,
		// No completion command: it would need a shell and adds noise.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.cmdPath = strings.TrimPrefix(cmd.CommandPath(), "skiff ")
			if !cmd.Flags().Changed("socket") && !cmd.Root().PersistentFlags().Changed("socket") {
				if v := a.env.getenv("SKIFF_SOCKET"); v != "" {
					a.socket = v
				}
			}
			if !cmd.Root().PersistentFlags().Changed("namespace") {
				if v := a.env.getenv("SKIFF_NAMESPACE"); v != "" {
					a.namespace = v
				}
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", DefaultSocket, "skiffd's socket (env SKIFF_SOCKET)")
	pf.StringVarP(&a.namespace, "namespace", "n", skiffv1.DefaultNamespace, "namespace to work in (env SKIFF_NAMESPACE)")
	pf.BoolVarP(&a.debug, "debug", "D", false, "print debug output")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })

	imageCmd := &cobra.Command{Use: "image", Short: "Manage images"}
	imageCmd.AddCommand(
		a.imagesCommand("ls", "list"),
		a.pullCommand(),
		a.rmiCommand("rm", "remove"),
		a.loadCommand(),
		a.saveCommand(),
		a.imageInspectCommand(),
		a.tagCommand(),
		a.pushCommand(), a.historyCommand(), a.imagePruneCommand(), a.importCommand(), // push.go
	)
	containerCmd := &cobra.Command{Use: "container", Short: "Manage containers"}
	containerCmd.AddCommand(
		a.psCommand("ls", "list", "ps"),
		a.runCommand(),
		a.createCommand(),
		a.startCommand(),
		a.stopCommand(),
		a.killCommand(),
		a.restartCommand(),
		a.rmCommand(),
		a.logsCommand(),
		a.waitCommand(),
		a.containerInspectCommand(),
		a.execCommand(),
		a.attachCommand(),
		a.pauseCommand("pause"),
		a.pauseCommand("unpause"),
		a.renameCommand(),
		a.updateCommand(),
		a.topCommand(),
		a.statsCommand(),
		a.cpCommand(), a.exportCommand(), a.commitCommand(), // copy.go, commit.go
	)
	root.AddCommand(
		imageCmd, containerCmd,
		a.pullCommand(),
		a.imagesCommand("images"),
		a.rmiCommand("rmi"),
		a.loadCommand(),
		a.saveCommand(),
		a.tagCommand(),
		a.loginCommand(),
		a.logoutCommand(),
		a.runCommand(),
		a.createCommand(),
		a.startCommand(),
		a.stopCommand(),
		a.killCommand(),
		a.restartCommand(),
		a.rmCommand(),
		a.psCommand("ps"),
		a.logsCommand(),
		a.waitCommand(),
		a.inspectCommand(),
		a.versionCommand(),
		a.infoCommand(),
		a.execCommand(),
		a.attachCommand(),
		a.pauseCommand("pause"),
		a.pauseCommand("unpause"),
		a.renameCommand(),
		a.updateCommand(),
		a.topCommand(),
		a.statsCommand(),
		a.volumeCommand(),
		a.networkCommand(),
		a.portCommand(),
		a.eventsCommand(),
		a.pushCommand(), a.historyCommand(), a.importCommand(), a.systemCommand(), // push.go
		a.cpCommand(), a.exportCommand(), a.commitCommand(), // copy.go, commit.go
	)
	for _, c := range []*cobra.Command{root, imageCmd, containerCmd} {
		c.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true // Use lines say [OPTIONS], as docker's
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	imageCmd.RunE = groupRunE
	containerCmd.RunE = groupRunE
	root.RunE = groupRunE
	root.Args = cobra.ArbitraryArgs
	imageCmd.Args = cobra.ArbitraryArgs
	containerCmd.Args = cobra.ArbitraryArgs
	return root
}

// groupRunE handles a command group run without (or with an unknown)
// subcommand, as docker does.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &statusError{code: exitGeneral, msg: fmt.Sprintf("%s: '%s' is not a skiff command.\nSee '%s --help'", cmd.CommandPath(), args[0], cmd.CommandPath())}
	}
	cmd.SetOut(cmd.OutOrStdout())
	return cmd.Help()
}

// Argument checks in docker's words; a wrong count is a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			s := "s"
			if n == 1 {
				s = ""
			}
			return usageError(cmd, fmt.Errorf("%q requires exactly %d argument%s.", cmd.CommandPath(), n, s))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			s := "s"
			if n == 1 {
				s = ""
			}
			return usageError(cmd, fmt.Errorf("%q requires at least %d argument%s.", cmd.CommandPath(), n, s))
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError(cmd, fmt.Errorf("%q requires at most %d argument(s).", cmd.CommandPath(), n))
		}
		return nil
	}
}

// multiError collects per-object failures of commands that take several
// objects (rm, stop, wait …): each is printed, the command exits 1.
func (a *app) eachArg(args []string, fn func(arg string) error) error {
	failed := false
	for _, arg := range args {
		if err := fn(arg); err != nil {
			var ce *connectError
			if errors.As(err, &ce) {
				return err
			}
			failed = true
			fmt.Fprintln(a.env.Stderr, err.Error())
		}
	}
	if failed {
		if a.engineExit {
			return &statusError{code: exitEngine}
		}
		return &statusError{code: exitGeneral}
	}
	return nil
}
