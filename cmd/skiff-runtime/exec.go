package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/container"
)

func execCmd(g *globals) *cobra.Command {
	var (
		o            container.ExecOpts
		processFile  string
		gids         []string
		apparmor     string
		processLabel string
		cgroup       []string
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER_ID [COMMAND [ARG...]]",
		Short: "run a new process in a running container",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return fmt.Errorf("exec: expects a container id and a command (or --process): %w", errdefs.ErrInvalidArgument)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// As for process.apparmorProfile and process.selinuxLabel in
			// config.json.
			if err := container.CheckAppArmor(apparmor, g.logger); err != nil {
				return &exitError{code: 255, err: err}
			}
			if processLabel != "" {
				g.logger.Warn("exec: --process-label is ignored: this skiff-runtime applies no SELinux labels", "label", processLabel)
			}
			if len(cgroup) > 0 {
				return fmt.Errorf("exec --cgroup: sub-cgroups for exec are not supported yet: %w", errdefs.ErrNotImplemented)
			}
			if o.PreserveFDs < 0 {
				return fmt.Errorf("--preserve-fds %d: must not be negative: %w", o.PreserveFDs, errdefs.ErrInvalidArgument)
			}
			if processFile != "" {
				b, err := os.ReadFile(processFile)
				if err != nil {
					return fmt.Errorf("--process %s: %w", processFile, err)
				}
				var p specs.Process
				if err := json.Unmarshal(b, &p); err != nil {
					return fmt.Errorf("--process %s: invalid JSON: %v: %w", processFile, err, errdefs.ErrInvalidArgument)
				}
				o.Process = &p
			}
			for _, s := range gids {
				n, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return fmt.Errorf("--additional-gids %q: must be a number: %w", s, errdefs.ErrInvalidArgument)
				}
				o.AdditionalGids = append(o.AdditionalGids, uint32(n))
			}
			o.Args = args[1:]
			code, err := g.runtime().Exec(cmd.Context(), args[0], o)
			if err != nil {
				// As runc: exec itself failing exits 255, so it can be
				// told from the process's own exit codes.
				return &exitError{code: 255, err: err}
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&processFile, "process", "p", "", "path to a process.json describing the process")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket to send the pty master to (with --tty)")
	f.StringVar(&o.Cwd, "cwd", "", "working directory in the container")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable KEY=VALUE")
	f.BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-TTY")
	f.StringVarP(&o.User, "user", "u", "", "UID[:GID] to run as")
	f.StringSliceVarP(&gids, "additional-gids", "g", nil, "additional gids")
	f.StringSliceVarP(&o.AddCaps, "cap", "c", nil, "add a capability")
	f.BoolVar(&o.NoNewPrivs, "no-new-privs", false, "set no_new_privs")
	f.BoolVarP(&o.Detach, "detach", "d", false, "return once the process runs")
	f.StringVar(&o.PidFile, "pid-file", "", "write the process's pid to this file")
	f.IntVar(&o.PreserveFDs, "preserve-fds", 0, "pass this many fds (from 3 on) to the process")
	f.BoolVar(&o.IgnorePaused, "ignore-paused", false, "exec even if the container is paused")
	f.StringVar(&apparmor, "apparmor", "", "AppArmor profile (not available on this host)")
	f.StringVar(&processLabel, "process-label", "", "SELinux label (not available on this host)")
	f.StringSliceVar(&cgroup, "cgroup", nil, "run in a sub-cgroup (not supported)")
	return cmd
}
