package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// defaultDetachKeys is docker's detach sequence.
const defaultDetachKeys = "ctrl-p,ctrl-q"

// errDetached ends an attached session on the detach sequence: the
// container (or exec) keeps running and the CLI exits 0, printing
// nothing, as docker's.
var errDetached = errors.New("read escape sequence")

// parseDetachKeys parses docker's --detach-keys: a comma-separated list of
// single characters and ctrl-<x> (x one of a-z, @, [, \, ], ^, _).
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = defaultDetachKeys
	}
	var keys []byte
	for _, k := range strings.Split(s, ",") {
		lk := strings.ToLower(k)
		switch {
		case len(k) == 1:
			keys = append(keys, k[0])
		case len(lk) == 6 && strings.HasPrefix(lk, "ctrl-"):
			c := lk[5]
			switch {
			case c >= 'a' && c <= 'z':
				keys = append(keys, c-'a'+1)
			case c == '@':
				keys = append(keys, 0)
			case c >= '[' && c <= '_':
				keys = append(keys, c-'['+27)
			default:
				return nil, invalid("invalid detach keys (%s) provided: unknown character %q", s, k)
			}
		default:
			return nil, invalid("invalid detach keys (%s) provided: unknown character %q", s, k)
		}
	}
	return keys, nil
}

// escapeProxy passes its reader's bytes through until the detach sequence
// keys comes, which it swallows and reports as errDetached. A partial
// match that then differs is passed on as it was typed.
type escapeProxy struct {
	r    io.Reader
	keys []byte
	pos  int // how much of keys matched so far (held back)
}

func (p *escapeProxy) Read(buf []byte) (int, error) {
	if len(p.keys) == 0 {
		return p.r.Read(buf)
	}
	room := len(buf) - len(p.keys)
	if room < 1 {
		room = 1
	}
	tmp := make([]byte, room)
	n, err := p.r.Read(tmp)
	out := buf[:0]
	for _, b := range tmp[:n] {
		if b == p.keys[p.pos] {
			p.pos++
			if p.pos == len(p.keys) {
				p.pos = 0
				return len(out), errDetached
			}
			continue
		}
		if p.pos > 0 {
			out = append(out, p.keys[:p.pos]...)
			p.pos = 0
			if b == p.keys[0] {
				p.pos = 1
				continue
			}
		}
		out = append(out, b)
	}
	if err != nil && p.pos > 0 {
		out = append(out, p.keys[:p.pos]...)
		p.pos = 0
	}
	return len(out), err
}

type execOptions struct {
	detach, interactive, tty, privileged bool
	detachKeys, user, workdir            string
	env, envFiles                        []string
}

func (a *app) execCommand() *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  minArgs(2),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			// The engine refusing the exec (a stopped container) exits 125,
			// as the other engine refusals; the process's own code, and
			// 126/127 for a command that cannot run, are kept.
			a.engineExit = true
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.execContainer(cmd.Context(), &o, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: run command in the background")
	f.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "Read in a file of environment variables")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to the command")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	return cmd
}

// execContainer is docker's exec: it runs cmd in the container, streams
// its stdio (raw terminal with -it, resized with the window) and exits
// with its code.
func (a *app) execContainer(ctx context.Context, o *execOptions, id string, cmdArgs []string) error {
	env, err := parseEnv(o.envFiles, o.env, a.env.lookupEnv)
	if err != nil {
		return err
	}
	keys, err := parseDetachKeys(o.detachKeys)
	if err != nil {
		return err
	}
	inFd, inTTY := isTerminal(a.env.Stdin)
	if o.interactive && o.tty && !o.detach && !inTTY {
		return &statusError{code: exitGeneral, msg: "the input device is not a TTY"}
	}
	ctx, c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.containers.Exec(ctx)
	if err != nil {
		return a.fromDaemon(err)
	}
	start := &skiffv1.ExecStart{
		Id: id, Cmd: cmdArgs, Env: env, User: o.user, WorkingDir: o.workdir,
		Tty: o.tty, Stdin: o.interactive && !o.detach, Detach: o.detach, Privileged: o.privileged,
	}
	if o.tty {
		if w, h, ok := a.termSize(inFd, inTTY); ok {
			start.Width, start.Height = uint32(w), uint32(h)
		}
	}
	var sendMu sync.Mutex
	send := func(m *skiffv1.ExecInput) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	if err := send(&skiffv1.ExecInput{Msg: &skiffv1.ExecInput_Start{Start: start}}); err != nil && !errors.Is(err, io.EOF) {
		return a.fromDaemon(err)
	}
	if o.detach {
		stream.CloseSend()
		for {
			if _, err := stream.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return a.fromDaemon(err)
			}
		}
	}
	if o.tty && o.interactive && inTTY {
		state, err := term.MakeRaw(inFd)
		if err != nil {
			return err
		}
		defer term.Restore(inFd, state)
	}

	done := a.copyOutput(stream)

	detached := make(chan struct{})
	if o.interactive {
		in := a.env.Stdin
		if o.tty {
			in = &escapeProxy{r: in, keys: keys}
		}
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					if send(&skiffv1.ExecInput{Msg: &skiffv1.ExecInput_Stdin{Stdin: append([]byte(nil), buf[:n]...)}}) != nil {
						return
					}
				}
				if errors.Is(err, errDetached) {
					close(detached)
					return
				}
				if err != nil {
					send(&skiffv1.ExecInput{Msg: &skiffv1.ExecInput_CloseStdin{CloseStdin: true}})
					return
				}
			}
		}()
	}
	sigc := make(chan os.Signal, 4)
	if o.tty {
		signal.Notify(sigc, syscall.SIGWINCH)
		defer signal.Stop(sigc)
	}
	for {
		select {
		case r := <-done:
			if r.err != nil {
				return a.fromDaemon(r.err)
			}
			if !r.exited {
				return &statusError{code: exitGeneral, msg: "exec in container " + id + ": the stream ended without the process's exit status"}
			}
			if r.code != 0 {
				return &statusError{code: r.code}
			}
			return nil
		case <-detached:
			cancel()
			return nil
		case <-sigc:
			if w, h, ok := a.termSize(inFd, inTTY); ok {
				send(&skiffv1.ExecInput{Msg: &skiffv1.ExecInput_Resize{Resize: &skiffv1.ResizeRequest{Id: id, Width: uint32(w), Height: uint32(h)}}})
			}
		}
	}
}

// termSize is the size of the CLI's terminal (stdout's, else stdin's).
func (a *app) termSize(inFd int, inTTY bool) (w, h int, ok bool) {
	fd := -1
	if f, isTTY := isTerminal(a.env.Stdout); isTTY {
		fd = f
	} else if inTTY {
		fd = inFd
	}
	if fd < 0 {
		return 0, 0, false
	}
	w, h, err := term.GetSize(fd)
	if err != nil || w <= 0 || h <= 0 {
		return 0, 0, false
	}
	return w, h, true
}

func (a *app) attachCommand() *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := parseDetachKeys(detachKeys)
			if err != nil {
				return err
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			ctr, err := c.containers.Inspect(ctx, &skiffv1.InspectContainerRequest{Id: args[0]})
			if err != nil {
				return a.fromDaemon(err)
			}
			switch ctr.GetStatus() {
			case "running":
			case "paused":
				return &statusError{code: exitGeneral, msg: "You cannot attach to a paused container, unpause it first"}
			default:
				return &statusError{code: exitGeneral, msg: "You cannot attach to a stopped container, start it first"}
			}
			cfg := ctr.GetConfig()
			stdin := !noStdin && cfg.GetOpenStdin()
			if stdin && cfg.GetTty() {
				if _, tty := isTerminal(a.env.Stdin); !tty {
					return &statusError{code: exitGeneral, msg: "the input device is not a TTY"}
				}
			}
			code, err := a.attachAndStart(ctx, c, ctr.GetId(), attachOptions{
				stdin: stdin, tty: cfg.GetTty(), sigProxy: sigProxy && !cfg.GetTty(),
				detachKeys: keys, keepStdinOpen: true,
			}, func(context.Context) error { return nil })
			if err != nil {
				return err
			}
			if code != 0 {
				return &statusError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	f.BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	f.BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	return cmd
}

// detachKeysFlag registers docker's --detach-keys on cmd (run, start),
// read by attachAndStart.
func (a *app) detachKeysFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
}
