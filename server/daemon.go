package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine"
	"github.com/skiff-containers/skiff/errdefs"
	"google.golang.org/grpc"
)

// DaemonConfig configures Run.
type DaemonConfig struct {
	Engine engine.Config
	// Socket is the unix socket to serve on; it is made root-only (0600).
	Socket string
	// Version is skiffd's version, reported by System.Version.
	Version string
	// Ready, if set, is called once the socket accepts calls.
	Ready func()
}

// Run opens the engine, serves skiff.v1 on cfg.Socket until ctx is done,
// then stops serving (letting calls in flight finish for a few seconds) and
// closes the engine. Containers keep running: they belong to their shims.
func Run(ctx context.Context, cfg DaemonConfig) error {
	log := cfg.Engine.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		cfg.Engine.Logger = log
	}
	lis, err := listen(ctx, cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)
	eng, err := engine.Open(ctx, cfg.Engine)
	if err != nil {
		lis.Close()
		return err
	}
	defer eng.Close()

	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(UnaryInterceptor(log)),
		grpc.ChainStreamInterceptor(StreamInterceptor(log)),
		grpc.MaxRecvMsgSize(16<<20),
	)
	skiffv1.RegisterImagesServer(srv, NewImages(eng.Images))
	skiffv1.RegisterContainersServer(srv, NewContainers(eng.Containers))
	skiffv1.RegisterVolumesServer(srv, NewVolumes(eng.Volumes))
	skiffv1.RegisterNetworksServer(srv, NewNetworks(eng.Network, eng.Containers))
	skiffv1.RegisterSystemServer(srv, NewSystem(eng, cfg.Version))
	skiffv1.RegisterEventsServer(srv, NewEvents(eng.Events))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	log.Info("skiffd serving", "socket", cfg.Socket, "root", cfg.Engine.Root, "state", cfg.Engine.State,
		"runtime", cfg.Engine.Runtime, "snapshotter", eng.Snapshotter.Driver(), "version", cfg.Version)
	if cfg.Ready != nil {
		cfg.Ready()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", cfg.Socket, err)
	case <-ctx.Done():
	}
	log.Info("skiffd stopping; containers keep running")
	done := make(chan struct{})
	eng.Events.Close() // event streams never end by themselves: end them
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	return nil
}

// listen makes the socket's directory and the socket, root-only. A socket
// left by a daemon that died is replaced; one that answers is refused.
func listen(ctx context.Context, path string) (net.Listener, error) {
	if path == "" || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket %q: must be an absolute path: %w", path, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("socket %s: create its directory: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another skiffd is serving it; stop it or use --socket: %w", path, errdefs.ErrAlreadyExists)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket %s: remove stale socket: %w", path, err)
		}
	}
	old := syscall.Umask(0o177)
	lis, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if ul, ok := lis.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	return lis, nil
}
