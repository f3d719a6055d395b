package cli

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

func (a *app) versionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the skiff version information",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			client := map[string]any{
				"Version": Version, "ApiVersion": "v1", "GoVersion": runtime.Version(),
				"Os": runtime.GOOS, "Arch": runtime.GOARCH,
			}
			var server *skiffv1.VersionResponse
			ctx, c, err := a.connect(cmd.Context())
			if err == nil {
				server, err = c.system.Version(ctx, &skiffv1.VersionRequest{})
				err = a.fromDaemon(err)
			}
			if format != "" {
				v := map[string]any{"Client": client}
				if server != nil {
					v["Server"] = map[string]any{
						"Version": server.GetVersion(), "ApiVersion": server.GetApiVersion(), "GoVersion": server.GetGoVersion(),
						"Os": server.GetOs(), "Arch": server.GetArch(), "KernelVersion": server.GetKernel(),
					}
				}
				if ferr := renderInspectFormat(a.env.Stdout, format, []any{v}); ferr != nil {
					return ferr
				}
				return err
			}
			w := newTable(a.env.Stdout)
			fmt.Fprintln(w, "Client:")
			fmt.Fprintf(w, " Version:\t%s\n", Version)
			fmt.Fprintf(w, " API version:\t%s\n", "v1")
			fmt.Fprintf(w, " Go version:\t%s\n", runtime.Version())
			fmt.Fprintf(w, " OS/Arch:\t%s/%s\n", runtime.GOOS, runtime.GOARCH)
			if server != nil {
				fmt.Fprintln(w, "")
				fmt.Fprintln(w, "Server:")
				fmt.Fprintln(w, " Engine:")
				fmt.Fprintf(w, "  Version:\t%s\n", server.GetVersion())
				fmt.Fprintf(w, "  API version:\t%s\n", server.GetApiVersion())
				fmt.Fprintf(w, "  Go version:\t%s\n", server.GetGoVersion())
				fmt.Fprintf(w, "  OS/Arch:\t%s/%s\n", server.GetOs(), server.GetArch())
				fmt.Fprintf(w, "  Kernel Version:\t%s\n", server.GetKernel())
			}
			w.Flush()
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func (a *app) infoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			info, err := c.system.Info(ctx, &skiffv1.InfoRequest{})
			if err != nil {
				return a.fromDaemon(err)
			}
			if format != "" {
				return renderInspectFormat(a.env.Stdout, format, []any{map[string]any{
					"Containers": info.GetContainers(), "ContainersRunning": info.GetRunning(),
					"ContainersPaused": info.GetPaused(), "ContainersStopped": info.GetStopped(),
					"Images": info.GetImages(), "ServerVersion": info.GetVersion(),
					"Driver": info.GetSnapshotter(), "CgroupVersion": info.GetCgroupVersion(),
					"DefaultRuntime": info.GetDefaultRuntime(), "Runtimes": info.GetRuntimes(),
					"KernelVersion": info.GetKernel(), "OperatingSystem": info.GetOs(),
					"OSType": "linux", "Architecture": info.GetArch(), "NCPU": info.GetCpus(),
					"MemTotal": info.GetMemory(), "Name": info.GetName(), "SkiffRootDir": info.GetRoot(),
					"Namespace": info.GetNamespace(),
				}})
			}
			w := a.env.Stdout
			fmt.Fprintln(w, "Client:")
			fmt.Fprintf(w, " Version:    %s\n", Version)
			fmt.Fprintf(w, " Namespace:  %s\n", a.namespace)
			fmt.Fprintf(w, " Debug Mode: %t\n", a.debug)
			fmt.Fprintln(w)
			fmt.Fprintln(w, "Server:")
			fmt.Fprintf(w, " Containers: %d\n", info.GetContainers())
			fmt.Fprintf(w, "  Running: %d\n", info.GetRunning())
			fmt.Fprintf(w, "  Paused: %d\n", info.GetPaused())
			fmt.Fprintf(w, "  Stopped: %d\n", info.GetStopped())
			fmt.Fprintf(w, " Images: %d\n", info.GetImages())
			fmt.Fprintf(w, " Server Version: %s\n", info.GetVersion())
			fmt.Fprintf(w, " Storage Driver: %s\n", info.GetSnapshotter())
			fmt.Fprintf(w, " Cgroup Version: %s\n", info.GetCgroupVersion())
			fmt.Fprintf(w, " Runtimes: %s\n", strings.Join(info.GetRuntimes(), " "))
			fmt.Fprintf(w, " Default Runtime: %s\n", info.GetDefaultRuntime())
			fmt.Fprintf(w, " Kernel Version: %s\n", info.GetKernel())
			fmt.Fprintf(w, " Operating System: %s\n", info.GetOs())
			fmt.Fprintf(w, " OSType: linux\n")
			fmt.Fprintf(w, " Architecture: %s\n", info.GetArch())
			fmt.Fprintf(w, " CPUs: %d\n", info.GetCpus())
			fmt.Fprintf(w, " Total Memory: %s\n", bytesSize(float64(info.GetMemory())))
			fmt.Fprintf(w, " Name: %s\n", info.GetName())
			fmt.Fprintf(w, " Namespace: %s\n", info.GetNamespace())
			fmt.Fprintf(w, " Skiff Root Dir: %s\n", info.GetRoot())
			fmt.Fprintf(w, " Skiff State Dir: %s\n", info.GetState())
			if info.GetServerPid() != "" {
				fmt.Fprintf(w, " Server PID: %s\n", info.GetServerPid())
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}
