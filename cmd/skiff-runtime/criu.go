package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiff-containers/skiff/errdefs"
)

// criuCheckTimeout bounds `criu check`, which only probes the kernel.
const criuCheckTimeout = 30 * time.Second

// checkpointCmd and restoreCmd take runc's flags, so that a caller driving
// skiff-runtime as runc gets, after its command line is parsed, the precise
// reason checkpoint/restore cannot be done here (criuRefusal) rather than a
// flag error.
func checkpointCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint [flags] CONTAINER_ID",
		Short: "checkpoint a running container with CRIU (not implemented: says why it cannot be done here)",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return criuRefusal(cmd.Context(), g.criu, "checkpoint")
		},
	}
	f := cmd.Flags()
	criuCommonFlags(f)
	f.String("parent-path", "", "path for previous criu image files in pre-dump")
	f.Bool("leave-running", false, "leave the process running after checkpointing")
	f.Bool("lazy-pages", false, "use userfaultfd to lazily restore memory pages")
	f.Int("status-fd", -1, "criu writes \\0 to this fd once lazy-pages is ready")
	f.String("page-server", "", "ADDRESS:PORT of the page server")
	f.Bool("pre-dump", false, "dump the container's memory information only, leaving it running")
	return cmd
}

func restoreCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore [flags] CONTAINER_ID",
		Short: "restore a container from a CRIU checkpoint (not implemented: says why it cannot be done here)",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return criuRefusal(cmd.Context(), g.criu, "restore")
		},
	}
	f := cmd.Flags()
	criuCommonFlags(f)
	f.String("console-socket", "", "path to an AF_UNIX socket receiving the console pty master")
	f.StringP("bundle", "b", "", "path to the root of the bundle directory")
	f.BoolP("detach", "d", false, "detach from the container's process")
	f.String("pid-file", "", "file to write the process id to")
	f.Bool("no-subreaper", false, "disable the use of the subreaper used to reap reparented processes")
	f.Bool("no-pivot", false, "do not use pivot root to jail process inside rootfs")
	f.Bool("lazy-pages", false, "use userfaultfd to lazily restore memory pages")
	f.String("lsm-profile", "", "LSM profile to set on restore")
	f.String("lsm-mount-context", "", "LSM mount context to set on restore")
	return cmd
}

// criuCommonFlags are runc's flags shared by checkpoint and restore.
func criuCommonFlags(f *pflag.FlagSet) {
	f.String("image-path", "", "path for saving criu image files")
	f.String("work-path", "", "path for saving work files and logs")
	f.Bool("tcp-established", false, "allow open tcp connections")
	f.Bool("ext-unix-sk", false, "allow external unix sockets")
	f.Bool("shell-job", false, "allow shell jobs")
	f.Bool("file-locks", false, "handle file locks, for safety")
	f.String("manage-cgroups-mode", "", "cgroups mode: soft, full, strict or ignore")
	f.StringSlice("empty-ns", nil, "create a namespace, but don't restore its properties")
	f.Bool("auto-dedup", false, "enable auto deduplication of memory images")
}

// criuRefusal says, always as ErrNotImplemented, why op (checkpoint or
// restore) cannot be done, most specific reason first: CRIU (the binary
// criu, looked up on PATH) is not installed; or `criu check` fails, quoting
// criu's first error, so CRIU cannot work on this kernel; or CRIU works but
// this skiff-runtime does not implement checkpoint/restore.
func criuRefusal(ctx context.Context, criu, op string) error {
	path, err := exec.LookPath(criu)
	if err != nil {
		return fmt.Errorf("%s: needs CRIU, which is not installed (%q: %v); install criu (Debian package criu), although this skiff-runtime does not implement checkpoint/restore yet either (runc does): %w",
			op, criu, err, errdefs.ErrNotImplemented)
	}
	ctx, cancel := context.WithTimeout(ctx, criuCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("did not finish within %v", criuCheckTimeout)
		}
		return fmt.Errorf("%s: CRIU cannot work on this kernel: `%s check` failed (%v): %s; checkpoint/restore is impossible on this host (and not implemented by this skiff-runtime yet): %w",
			op, path, err, firstCRIUError(out.String()), errdefs.ErrNotImplemented)
	}
	return fmt.Errorf("%s: CRIU (%s) works on this host, but checkpoint/restore is not implemented by this skiff-runtime yet; use runc for it: %w",
		op, path, errdefs.ErrNotImplemented)
}

// firstCRIUError picks what criu said first went wrong: its first "Error"
// line, else its first non-empty line, quoted and cut to a sane length.
func firstCRIUError(out string) string {
	var first string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "Error") {
			first = line
			break
		}
		if first == "" {
			first = line
		}
	}
	if first == "" {
		return "criu printed nothing"
	}
	if len(first) > 300 {
		first = first[:300] + "..."
	}
	return fmt.Sprintf("%q", first)
}
