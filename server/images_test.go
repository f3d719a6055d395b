package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/images"
	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/image/snapshot"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// imagesClient serves the Images service over an in-memory connection.
func imagesClient(t *testing.T) skiffv1.ImagesClient {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (snapshots)")
	}
	root := t.TempDir()
	store, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New(filepath.Join(root, "snapshots"), snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	db, err := metadata.Open(filepath.Join(root, "meta.db"), metadata.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := images.New(images.Config{DB: db, Content: store, Snapshotter: snap})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(UnaryInterceptor(log)), grpc.ChainStreamInterceptor(StreamInterceptor(log)))
	skiffv1.RegisterImagesServer(srv, NewImages(svc))
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
	return skiffv1.NewImagesClient(conn)
}

func TestImagesServer(t *testing.T) {
	if err := imagebuild.Available(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	reg := remotetest.Start(t)
	bb, err := imagebuild.Build(imagebuild.Options{Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []imagebuild.Blob{bb.Layer, bb.Config} {
		if err := reg.PushBlob(ctx, "skiff/busybox", b.Descriptor, b.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.PushManifest(ctx, "skiff/busybox", "latest", bb.Manifest.Descriptor, bb.Manifest.Data); err != nil {
		t.Fatal(err)
	}
	client := imagesClient(t)
	name := reg.Domain + "/skiff/busybox:latest"

	// Pull streams progress and ends with the image.
	stream, err := client.Pull(ctx, &skiffv1.PullRequest{Ref: reg.Domain + "/skiff/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*skiffv1.PullProgress
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) < 3 {
		t.Fatalf("pull sent %d messages", len(msgs))
	}
	statuses := map[string]bool{}
	for _, m := range msgs[:len(msgs)-1] {
		if m.Image != nil {
			t.Errorf("an image before the last message: %v", m)
		}
		statuses[m.Status] = true
	}
	for _, s := range []string{"resolving", "downloading", "extracting", "extracted"} {
		if !statuses[s] {
			t.Errorf("no %q progress in %v", s, msgs)
		}
	}
	last := msgs[len(msgs)-1].Image
	if last == nil || last.Name != name || last.Id != bb.Config.Descriptor.Digest.String() || last.Digest != bb.Manifest.Descriptor.Digest.String() || len(last.Layers) != 1 || last.Created == 0 {
		t.Fatalf("last message's image: %v", last)
	}

	// Errors carry their class as the gRPC code.
	for _, tt := range []struct {
		name string
		code codes.Code
	}{
		{"nosuch", codes.NotFound},
		{"Upper", codes.InvalidArgument},
		{"", codes.InvalidArgument},
	} {
		_, err := client.Get(ctx, &skiffv1.GetImageRequest{Name: tt.name})
		if status.Code(err) != tt.code {
			t.Errorf("Get(%q) = %v, want code %v", tt.name, err, tt.code)
		}
	}
	ps, err := client.Pull(ctx, &skiffv1.PullRequest{Ref: reg.Domain + "/skiff/busybox:nosuch"})
	if err == nil {
		for err == nil {
			_, err = ps.Recv()
		}
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("Pull of a missing tag = %v, want NotFound", err)
	}
	if _, err := client.List(skiffv1.WithNamespace(ctx, "bad/ns"), &skiffv1.ListImagesRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("List in a bad namespace = %v", err)
	}

	got, err := client.Get(ctx, &skiffv1.GetImageRequest{Name: last.Id[len("sha256:"):][:12]})
	if err != nil || got.Name != name {
		t.Errorf("Get by short id = %v, %v", got, err)
	}
	if _, err := client.Tag(ctx, &skiffv1.TagImageRequest{Source: name, Target: "busybox:mine"}); err != nil {
		t.Fatal(err)
	}
	list, err := client.List(ctx, &skiffv1.ListImagesRequest{})
	if err != nil || len(list.Images) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}

	// Save, then Load into another namespace.
	ss, err := client.Save(ctx, &skiffv1.SaveRequest{Names: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	for {
		c, err := ss.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Data) > saveChunkSize {
			t.Errorf("chunk of %d bytes", len(c.Data))
		}
		archive.Write(c.Data)
	}
	other := skiffv1.WithNamespace(ctx, "other")
	ls, err := client.Load(other)
	if err != nil {
		t.Fatal(err)
	}
	data := archive.Bytes()
	for len(data) > 0 {
		n := min(len(data), 100<<10)
		if err := ls.Send(&skiffv1.LoadRequest{Data: data[:n]}); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	lr, err := ls.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Images) != 1 || lr.Images[0].Id != last.Id || lr.Images[0].Name != name {
		t.Errorf("Load = %v", lr.Images)
	}
	// A bad archive is InvalidArgument.
	ls, err = client.Load(other)
	if err != nil {
		t.Fatal(err)
	}
	ls.Send(&skiffv1.LoadRequest{Data: []byte("not an archive, not a tar")})
	if _, err := ls.CloseAndRecv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Load of garbage = %v", err)
	}
	ss, err = client.Save(ctx, &skiffv1.SaveRequest{Names: []string{"nosuch"}})
	if err == nil {
		_, err = ss.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("Save(nosuch) = %v", err)
	}

	// Remove: by name, then the last name frees the blobs.
	rr, err := client.Remove(ctx, &skiffv1.RemoveImageRequest{Name: "busybox:mine"})
	if err != nil || len(rr.Untagged) != 1 || len(rr.Deleted) != 0 {
		t.Errorf("Remove(busybox:mine) = %v, %v", rr, err)
	}
	if _, err := client.Remove(ctx, &skiffv1.RemoveImageRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	rr, err = client.Remove(other, &skiffv1.RemoveImageRequest{Name: last.Id})
	if err != nil || len(rr.Deleted) != 3 {
		t.Errorf("Remove(id) in other = %v, %v", rr, err)
	}
	if _, err := client.Remove(ctx, &skiffv1.RemoveImageRequest{Name: name}); status.Code(err) != codes.NotFound {
		t.Errorf("second Remove = %v", err)
	}
}
