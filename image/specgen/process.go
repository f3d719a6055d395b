package specgen

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// command merges the image's Entrypoint and Cmd with --entrypoint and the
// arguments as docker does (daemon/commit.go merge, daemon/create.go): an
// --entrypoint (even an empty one) replaces the image's Entrypoint and
// discards its Cmd; arguments replace the image's Cmd. No command at all is
// ErrInvalidArgument.
func command(imgEntrypoint, imgCmd []string, o *Options, image string) ([]string, error) {
	entrypoint, cmd := imgEntrypoint, o.Cmd
	if o.EntrypointSet {
		entrypoint = o.Entrypoint
	} else if len(cmd) == 0 {
		cmd = imgCmd
	}
	// docker's CLI sends --entrypoint "" as [""], which the daemon resets.
	if len(entrypoint) == 1 && entrypoint[0] == "" {
		entrypoint = nil
	}
	args := append(append([]string{}, entrypoint...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: image %s has no Entrypoint or Cmd and none was given (give a command after the image, or --entrypoint): %w",
			imageName(image), errdefs.ErrInvalidArgument)
	}
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("command argument %d %q contains a NUL byte: %w", i, a, errdefs.ErrInvalidArgument)
		}
	}
	return args, nil
}

// envName returns the name of an environment entry ("NAME=value" or a
// bare "NAME").
func envName(e string) string {
	name, _, _ := strings.Cut(e, "=")
	return name
}

// checkEnv refuses an entry docker's CLI would refuse (an empty name) and
// one no process can receive (a NUL byte). what names the source.
func checkEnv(what string, env []string) error {
	for i, e := range env {
		if envName(e) == "" {
			return fmt.Errorf("%s[%d] %q: invalid environment variable: the name is empty: %w", what, i, e, errdefs.ErrInvalidArgument)
		}
		if strings.IndexByte(e, 0) >= 0 {
			return fmt.Errorf("%s[%d] %q: contains a NUL byte: %w", what, i, e, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// environment builds process.env as docker does: the user's -e entries
// with the image's entries they do not name appended (daemon/commit.go
// merge), laid over PATH (docker's default), HOSTNAME and, with a
// terminal, TERM=xterm (container.CreateDaemonEnvironment): an entry
// replaces the default of the same name in place, an entry without "="
// removes it, the rest are appended in order.
func environment(imgEnv, userEnv []string, hostname string, tty bool) ([]string, error) {
	if err := checkEnv("image config Env", imgEnv); err != nil {
		return nil, err
	}
	if err := checkEnv("-e", userEnv); err != nil {
		return nil, err
	}
	merged := append([]string{}, userEnv...)
	for _, ie := range imgEnv {
		found := false
		for _, ue := range userEnv {
			if envName(ue) == envName(ie) {
				found = true
				break
			}
		}
		if !found {
			merged = append(merged, ie)
		}
	}

	env := []string{"PATH=" + defaultPathEnv, "HOSTNAME=" + hostname}
	if tty {
		env = append(env, "TERM=xterm")
	}
	index := map[string]int{}
	for i, e := range env {
		index[envName(e)] = i
	}
	for _, e := range merged {
		name, _, hasValue := strings.Cut(e, "=")
		i, exists := index[name]
		switch {
		case !hasValue:
			if exists {
				env[i] = ""
			}
		case exists:
			env[i] = e
		default:
			index[name] = len(env)
			env = append(env, e)
		}
	}
	out := env[:0]
	for _, e := range env {
		if e != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

// workingDir returns process.cwd: -w, else the image's WorkingDir, else
// "/"; it must be absolute (docker: "the working directory ... needs to be
// an absolute path").
func workingDir(imgDir, flag string) (string, error) {
	dir, what := flag, "-w"
	if dir == "" {
		dir, what = imgDir, "image config WorkingDir"
	}
	if dir == "" {
		return "/", nil
	}
	if !path.IsAbs(dir) {
		return "", fmt.Errorf("%s %q: the working directory needs to be an absolute path: %w", what, dir, errdefs.ErrInvalidArgument)
	}
	if strings.IndexByte(dir, 0) >= 0 {
		return "", fmt.Errorf("%s %q: contains a NUL byte: %w", what, dir, errdefs.ErrInvalidArgument)
	}
	return path.Clean(dir), nil
}

// sigRTMIN and sigRTMAX are the real-time signal range as docker's signal
// table names it (glibc's SIGRTMIN, after its two reserved signals).
const (
	sigRTMIN = 34
	sigRTMAX = 64
)

// parseSignal parses a stop signal as docker's signal.ParseSignal does: a
// number (1-64), or a name with or without the SIG prefix in any case,
// including RTMIN+n and RTMAX-n. It returns the number and the canonical
// name.
func parseSignal(what, s string) (syscall.Signal, string, error) {
	bad := func() (syscall.Signal, string, error) {
		return 0, "", fmt.Errorf("%s %q: invalid signal (use a name like SIGTERM or a number 1-%d): %w", what, s, sigRTMAX, errdefs.ErrInvalidArgument)
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > sigRTMAX {
			return bad()
		}
		return syscall.Signal(n), signalName(syscall.Signal(n)), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	rt := func(base, sign int, off string) (syscall.Signal, string, error) {
		k, err := strconv.Atoi(off)
		if err != nil || k < 0 || k > sigRTMAX-sigRTMIN || strings.HasPrefix(off, "+") || strings.HasPrefix(off, "-") {
			return bad()
		}
		sig := syscall.Signal(base + sign*k)
		return sig, signalName(sig), nil
	}
	switch {
	case name == "RTMIN":
		return sigRTMIN, "SIGRTMIN", nil
	case name == "RTMAX":
		return sigRTMAX, "SIGRTMAX", nil
	case strings.HasPrefix(name, "RTMIN+"):
		return rt(sigRTMIN, 1, strings.TrimPrefix(name, "RTMIN+"))
	case strings.HasPrefix(name, "RTMAX-"):
		return rt(sigRTMAX, -1, strings.TrimPrefix(name, "RTMAX-"))
	}
	sig := unix.SignalNum("SIG" + name)
	if sig == 0 {
		return bad()
	}
	return sig, signalName(sig), nil
}

// signalName returns the canonical name of sig ("SIGTERM", "SIGRTMIN+3").
func signalName(sig syscall.Signal) string {
	if sig >= sigRTMIN && sig <= sigRTMAX {
		switch {
		case sig == sigRTMIN:
			return "SIGRTMIN"
		case sig == sigRTMAX:
			return "SIGRTMAX"
		case sig-sigRTMIN <= sigRTMAX-sig:
			return "SIGRTMIN+" + strconv.Itoa(int(sig-sigRTMIN))
		default:
			return "SIGRTMAX-" + strconv.Itoa(int(sigRTMAX-sig))
		}
	}
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "SIG" + strconv.Itoa(int(sig))
}
