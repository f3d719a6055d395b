package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/engine/containers/containerstest"
	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/errdefs/errgrpc"
	"github.com/skiff-containers/skiff/image/snapshot"
	"github.com/skiff-containers/skiff/internal/testutil"
)

// shimBinary builds cmd/skiff-shim, or falls back on bin/skiff-shim of
// `make build` if the tree does not build right now.
func shimBinary(t *testing.T) string {
	t.Helper()
	bin, err := testutil.BuildBinary("./cmd/skiff-shim")
	if err == nil {
		return bin
	}
	if root, rerr := testutil.ModuleRoot(); rerr == nil {
		if _, serr := os.Stat(filepath.Join(root, "bin", "skiff-shim")); serr == nil {
			t.Logf("building skiff-shim failed; using bin/skiff-shim: %v", err)
			return filepath.Join(root, "bin", "skiff-shim")
		}
	}
	t.Fatal(err)
	return ""
}

// containersClient serves the Containers service, over a container
// service with a busybox image and runc, on an in-memory connection.
func containersClient(t *testing.T) skiffv1.ContainersClient {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (containers)")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc")
	}
	shim := shimBinary(t)
	t.Cleanup(testutil.RemoveBuilds)
	dir, err := os.MkdirTemp("", "sksrv-") // short: shim socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, state := filepath.Join(dir, "lib"), filepath.Join(dir, "run")
	os.MkdirAll(root, 0o711)
	os.MkdirAll(state, 0o711)
	db, err := metadata.Open(filepath.Join(root, "meta.db"), metadata.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sn, err := snapshot.New(filepath.Join(root, "snapshots"), snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	imgs, err := containerstest.Busybox(context.Background(), sn)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := containers.New(containers.Config{
		DB: db, Snapshotter: sn, Images: imgs, Root: root, State: state,
		ShimBinary: shim, DefaultRuntime: runc, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Remove what a failing test left, then check nothing remains.
		ctx := context.Background()
		list, _ := svc.List(ctx, "default", true)
		for _, c := range list {
			svc.Remove(ctx, "default", c.ID, true)
		}
		svc.Close()
		if found := testutil.FindLeftovers(testutil.Leftovers{Dirs: []string{dir}}); len(found) > 0 {
			t.Errorf("leftovers: %q", found)
		}
	})
	log := slog.New(slog.DiscardHandler)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(UnaryInterceptor(log)), grpc.ChainStreamInterceptor(StreamInterceptor(log)))
	skiffv1.RegisterContainersServer(srv, NewContainers(svc))
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return skiffv1.NewContainersClient(conn)
}

// TestContainersServer: the error classes as gRPC codes (with the exit
// code of a program that does not exist as a detail), a run through the
// API (create, attach before start, stdin, output, exit), logs, wait and
// remove.
func TestContainersServer(t *testing.T) {
	cl := containersClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := cl.Inspect(ctx, &skiffv1.InspectContainerRequest{Id: "nosuch"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "no such container: nosuch") {
		t.Errorf("inspect nosuch = %v, want NotFound", err)
	}
	_, err = cl.Create(ctx, &skiffv1.CreateContainerRequest{Config: &skiffv1.ContainerConfig{Name: "-bad", Image: "busybox"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("create -bad = %v, want InvalidArgument", err)
	}
	_, err = cl.Create(ctx, &skiffv1.CreateContainerRequest{Config: &skiffv1.ContainerConfig{Image: "nosuch"}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("create from a missing image = %v, want NotFound", err)
	}
	nsCtx := skiffv1.WithNamespace(ctx, "bad namespace")
	if _, err := cl.List(nsCtx, &skiffv1.ListContainersRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("list in a bad namespace = %v, want InvalidArgument", err)
	}

	// A program that does not exist: exit code 127 in the status details.
	cr, err := cl.Create(ctx, &skiffv1.CreateContainerRequest{Config: &skiffv1.ContainerConfig{
		Name: "missing", Image: "busybox", Cmd: []string{"/no/such/program"}, StopTimeout: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if cr.GetContainer().GetStatus() != "created" || cr.GetContainer().GetConfig().GetStopTimeout() != -1 {
		t.Errorf("created: %v", cr.GetContainer())
	}
	_, err = cl.Start(ctx, &skiffv1.StartContainerRequest{Id: "missing"})
	if code, ok := errdefs.ExitCode(errgrpc.FromGRPC(err)); !ok || code != 127 || status.Code(err) != codes.InvalidArgument {
		t.Errorf("start of a missing program = %v (exit code %d, %v), want InvalidArgument with exit code 127", err, code, ok)
	}
	if _, err := cl.Remove(ctx, &skiffv1.RemoveContainerRequest{Id: "missing"}); err != nil {
		t.Fatal(err)
	}

	// A run with attach.
	if _, err := cl.Create(ctx, &skiffv1.CreateContainerRequest{Config: &skiffv1.ContainerConfig{
		Name: "hello", Image: "busybox", OpenStdin: true, StopTimeout: -1,
		Cmd: []string{"sh", "-c", "read x; echo got $x; echo oops >&2; exit 2"}}}); err != nil {
		t.Fatal(err)
	}
	st, err := cl.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&skiffv1.AttachInput{Msg: &skiffv1.AttachInput_Start{Start: &skiffv1.AttachStart{
		Id: "hello", Stdin: true, Stdout: true, Stderr: true, CloseStdinOnEof: true}}}); err != nil {
		t.Fatal(err)
	}
	if ack, err := st.Recv(); err != nil || len(ack.GetData()) != 0 || ack.GetExit() != nil {
		t.Fatalf("attach acknowledgement = %v, %v", ack, err)
	}
	if c, err := cl.Start(ctx, &skiffv1.StartContainerRequest{Id: "hello"}); err != nil || c.GetStatus() != "running" {
		t.Fatalf("start = %v, %v", c, err)
	}
	st.Send(&skiffv1.AttachInput{Msg: &skiffv1.AttachInput_Stdin{Stdin: []byte("there\n")}})
	st.Send(&skiffv1.AttachInput{Msg: &skiffv1.AttachInput_CloseStdin{CloseStdin: true}})
	var stdout, stderr strings.Builder
	var exit *skiffv1.AttachExit
	for {
		out, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case out.GetExit() != nil:
			exit = out.GetExit()
		case out.GetStream() == skiffv1.Stream_STREAM_STDOUT:
			stdout.Write(out.GetData())
		case out.GetStream() == skiffv1.Stream_STREAM_STDERR:
			stderr.Write(out.GetData())
		}
	}
	if exit.GetExitCode() != 2 || stdout.String() != "got there\n" || stderr.String() != "oops\n" {
		t.Errorf("attach: exit %v, stdout %q, stderr %q", exit, stdout.String(), stderr.String())
	}
	w, err := cl.Wait(ctx, &skiffv1.WaitContainerRequest{Id: "hello"})
	if err != nil || w.GetExitCode() != 2 {
		t.Errorf("wait = %v, %v", w, err)
	}
	logs, err := cl.Logs(ctx, &skiffv1.LogsRequest{Id: "hello", Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		e, err := logs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.GetTime() == 0 {
			t.Errorf("log entry without a time: %v", e)
		}
		lines = append(lines, e.GetStream().String()+" "+string(e.GetData()))
	}
	if len(lines) != 2 {
		t.Errorf("logs = %q", lines)
	}
	if _, err := cl.Kill(ctx, &skiffv1.KillContainerRequest{Id: "hello"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("kill of an exited container = %v, want FailedPrecondition", err)
	}
	list, err := cl.List(ctx, &skiffv1.ListContainersRequest{All: true})
	if err != nil || len(list.GetContainers()) != 1 || list.GetContainers()[0].GetExitCode() != 2 || list.GetContainers()[0].GetStatus() != "exited" {
		t.Errorf("list -a = %v, %v", list, err)
	}
	if r, err := cl.Remove(ctx, &skiffv1.RemoveContainerRequest{Id: "hello"}); err != nil || len(r.GetId()) != 64 {
		t.Errorf("remove = %v, %v", r, err)
	}
	if _, err := cl.Remove(ctx, &skiffv1.RemoveContainerRequest{Id: "hello"}); status.Code(err) != codes.NotFound {
		t.Errorf("second remove = %v, want NotFound", err)
	}
}
