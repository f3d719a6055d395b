// Command skiffd is skiff's engine daemon: it serves the skiff.v1 API on a
// unix socket and runs containers through one skiff-shim each. The work is
// done by package server (and the engine below it); this main turns flags
// and the config file into a server.DaemonConfig.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/skiff-containers/skiff/engine"
	"github.com/skiff-containers/skiff/server"
	"github.com/spf13/cobra"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var (
		configFile string
		fc         server.FileConfig
		logLevel   string
		logFormat  string
	)
	cmd := &cobra.Command{
		Use:           "skiffd",
		Short:         "skiff's engine daemon: images, containers, and their shims",
		Version:       version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", server.DefaultConfigFile, "configuration file (TOML; every key is also a flag, flags win)")
	f.StringVar(&fc.Root, "root", "/var/lib/skiff", "directory for persistent data (content, snapshots, metadata, logs)")
	f.StringVar(&fc.State, "state", "/run/skiff", "directory for volatile state (shims, bundles, runtime state)")
	f.StringVar(&fc.Socket, "socket", "/run/skiff/skiffd.sock", "unix socket to serve the skiff.v1 API on")
	f.StringVar(&fc.Runtime, "runtime", "skiff-runtime", "default OCI runtime (skiff-runtime, runc, crun, or a path)")
	f.StringVar(&fc.Shim, "shim", "", "skiff-shim binary (default: next to skiffd, else on PATH)")
	f.StringVar(&fc.Snapshotter, "snapshotter", "", "snapshotter: overlayfs or native (default: overlayfs where it works)")
	f.StringSliceVar(&fc.InsecureRegistries, "insecure-registry", nil, "registry that may be reached over plain HTTP (host[:port] or CIDR; repeatable)")
	f.StringSliceVar(&fc.CNIBinDirs, "cni-bin-dir", []string{"/usr/lib/cni"}, "directory of the CNI plugin binaries (repeatable)")
	f.StringVar(&fc.DefaultBridge, "default-bridge", "skiff0", "bridge device of the default network (skiff), when it is created")
	f.StringVar(&fc.DefaultSubnet, "default-subnet", "10.88.0.0/16", "subnet of the default network (skiff), when it is created")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		file, err := server.LoadConfigFile(configFile, cmd.Flags().Changed("config"))
		if err != nil {
			return err
		}
		mergeFile(cmd, &fc, file, &logLevel, &logFormat)
		log, err := newLogger(logLevel, logFormat)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return server.Run(ctx, server.DaemonConfig{
			Socket:  fc.Socket,
			Version: version,
			Engine: engine.Config{
				Root: fc.Root, State: fc.State, Runtime: resolveRuntime(fc.Runtime), ShimBinary: besideSelf(fc.Shim, "skiff-shim"),
				Snapshotter: fc.Snapshotter, InsecureRegistries: fc.InsecureRegistries,
				DockerConfig: filepath.Join(homeDir(), ".docker", "config.json"), Logger: log,
				CNIBinDirs: fc.CNIBinDirs, DefaultBridge: fc.DefaultBridge, DefaultSubnet: fc.DefaultSubnet,
			},
		})
	}
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "skiffd:", err)
		return 1
	}
	return 0
}

// mergeFile takes each setting from the config file unless its flag was
// given.
func mergeFile(cmd *cobra.Command, fc *server.FileConfig, file server.FileConfig, logLevel, logFormat *string) {
	set := func(flag string, dst *string, v string) {
		if v != "" && !cmd.Flags().Changed(flag) {
			*dst = v
		}
	}
	set("root", &fc.Root, file.Root)
	set("state", &fc.State, file.State)
	set("socket", &fc.Socket, file.Socket)
	set("runtime", &fc.Runtime, file.Runtime)
	set("shim", &fc.Shim, file.Shim)
	set("snapshotter", &fc.Snapshotter, file.Snapshotter)
	set("log-level", logLevel, file.LogLevel)
	set("log-format", logFormat, file.LogFormat)
	set("default-bridge", &fc.DefaultBridge, file.DefaultBridge)
	set("default-subnet", &fc.DefaultSubnet, file.DefaultSubnet)
	if len(file.CNIBinDirs) > 0 && !cmd.Flags().Changed("cni-bin-dir") {
		fc.CNIBinDirs = file.CNIBinDirs
	}
	if len(file.InsecureRegistries) > 0 && !cmd.Flags().Changed("insecure-registry") {
		fc.InsecureRegistries = file.InsecureRegistries
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// besideSelf returns explicit if set, else name next to this executable if
// it is there, else name (looked up on PATH by whoever runs it).
func besideSelf(explicit, name string) string {
	if explicit != "" {
		return explicit
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return name
}

func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	return "/root"
}

// resolveRuntime prefers the skiff-runtime installed next to skiffd when
// the default runtime is asked for by name.
func resolveRuntime(name string) string {
	if name == "skiff-runtime" {
		return besideSelf("", name)
	}
	return name
}
