package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/image/archive"
)

// cp: docker's rules, split as docker splits them: the daemon resolves
// and archives or extracts the container's side, this side the host's
// (image/archive's copy rules on both sides).

// copyChunk is the size of the chunks of a tar sent to the daemon.
const copyChunk = 256 << 10

type cpOptions struct {
	archive, followLink, quiet bool
}

func (a *app) cpCommand() *cobra.Command {
	var o cpOptions
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tskiff cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: `Copy files/folders between a container and the local filesystem

Use '-' as the source to read a tar archive from stdin
and extract it to a directory destination in a container.
Use '-' as the destination to stream a tar archive of a
container source to stdout.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcCtr, srcPath := splitCpArg(args[0])
			dstCtr, dstPath := splitCpArg(args[1])
			switch {
			case srcPath == "":
				return errors.New("source path can not be empty")
			case dstPath == "":
				return errors.New("destination path can not be empty")
			case srcCtr == "" && dstCtr == "":
				return errors.New("must specify at least one container source")
			case srcCtr != "" && dstCtr != "":
				return errors.New("copying between containers is not supported")
			}
			if srcCtr != "" {
				return a.copyFromContainer(cmd.Context(), srcCtr, srcPath, dstPath, o)
			}
			return a.copyToContainer(cmd.Context(), srcPath, dstCtr, dstPath, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	f.BoolVarP(&o.followLink, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output during copy")
	return cmd
}

// splitCpArg splits CONTAINER:PATH; a path that is absolute, or relative
// starting with ".", is local even with a colon (docker's rule).
func splitCpArg(arg string) (ctr, p string) {
	if filepath.IsAbs(arg) {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok || strings.HasPrefix(ctr, ".") {
		return "", arg
	}
	return ctr, p
}

// localPath makes p absolute, keeping a trailing "/" or "/." (docker's
// resolveLocalPath).
func localPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return archive.PreserveTrailingDotOrSeparator(abs, p), nil
}

// copied reports a finished copy as docker does, on a terminal only.
func (a *app) copied(o cpOptions, n int64, where string) {
	if _, tty := isTerminal(a.env.Stderr); tty && !o.quiet {
		fmt.Fprintf(a.env.Stderr, "Successfully copied %s to %s\n", humanBytes(n), where)
	}
}

func humanBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

// chunkReader reads the data of a CopyChunk stream.
type chunkReader struct {
	recv func() (*skiffv1.CopyChunk, error)
	buf  []byte
	n    int64
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		c, err := r.recv()
		if err != nil {
			return 0, err
		}
		r.buf = c.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.n += int64(n)
	return n, nil
}

func (a *app) copyFromContainer(ctx context.Context, ctr, src, dst string, o cpOptions) error {
	if dst != "-" {
		var err error
		if dst, err = localPath(dst); err != nil {
			return err
		}
	}
	ctx, c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.containers.CopyFrom(ctx, &skiffv1.CopyFromRequest{Id: ctr, Path: src, FollowLink: o.followLink})
	if err != nil {
		return a.fromDaemon(err)
	}
	first, err := stream.Recv()
	if err != nil {
		return a.fromDaemon(err)
	}
	st := first.GetStat()
	if st == nil {
		return fmt.Errorf("copy from %s:%s: the daemon sent no stat of the source", ctr, src)
	}
	r := &chunkReader{buf: first.GetData(), recv: func() (*skiffv1.CopyChunk, error) {
		ch, err := stream.Recv()
		if err != nil && !errors.Is(err, io.EOF) {
			err = a.fromDaemon(err)
		}
		return ch, err
	}}
	if dst == "-" {
		if _, err := io.Copy(a.env.Stdout, r); err != nil {
			return err
		}
		return nil
	}
	info, err := archive.HostDestination(dst)
	if err != nil {
		return err
	}
	isDir := os.FileMode(st.GetMode()).IsDir()
	dir, rebase, err := archive.PrepareCopy(st.GetName(), isDir, info)
	if err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	h := os.NewFile(uintptr(fd), dir)
	defer h.Close()
	if _, err := archive.ApplyAt(ctx, h, r, archive.ApplyOptions{
		Name:                 "from " + ctr + ":" + src,
		Compression:          archive.Uncompressed,
		Plain:                true,
		NoOverwriteDirNonDir: true,
		Rebase:               rebase,
		// The files are the user's, unless -a keeps the container's
		// owners; device nodes from a container never reach the host.
		IgnoreOwnership: !o.archive,
	}); err != nil {
		var de *daemonError
		if errors.As(err, &de) {
			return de
		}
		return err
	}
	a.copied(o, r.n, dst)
	return nil
}

func (a *app) copyToContainer(ctx context.Context, src, ctr, dst string, o cpOptions) error {
	var in io.Reader
	first := &skiffv1.CopyToRequest{Id: ctr, Path: dst, CopyUidGid: o.archive}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if src == "-" {
		in = a.env.Stdin
		if in == nil {
			in = strings.NewReader("")
		}
	} else {
		p, err := localPath(src)
		if err != nil {
			return err
		}
		dir, base, name, isDir, err := archive.HostSource(p, o.followLink)
		if err != nil {
			return err
		}
		defer dir.Close()
		first.Source = &skiffv1.CopyToRequest_Source{Name: name, IsDir: isDir}
		pr, pw := io.Pipe()
		defer pr.Close()
		go func() {
			pw.CloseWithError(archive.WriteTree(ctx, pw, dir, base, name, archive.WriteOptions{}))
		}()
		in = pr
	}
	ctx, c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	stream, err := c.containers.CopyTo(ctx)
	if err != nil {
		return a.fromDaemon(err)
	}
	buf := make([]byte, copyChunk)
	var n int64
	for {
		k, rerr := io.ReadFull(in, buf)
		if k > 0 || first != nil {
			msg := first
			if msg == nil {
				msg = &skiffv1.CopyToRequest{}
			}
			first = nil
			msg.Data = append([]byte(nil), buf[:k]...)
			n += int64(k)
			if err := stream.Send(msg); err != nil {
				if errors.Is(err, io.EOF) {
					break // the daemon ended the stream: CloseAndRecv has its error
				}
				return a.fromDaemon(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			stream.CloseSend()
			return rerr
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return a.fromDaemon(err)
	}
	a.copied(o, n, ctr+":"+dst)
	return nil
}

func (a *app) exportCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.refuseTerminal(output); err != nil {
				return err
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			stream, err := c.containers.Export(ctx, &skiffv1.ExportContainerRequest{Id: args[0]})
			if err != nil {
				return a.fromDaemon(err)
			}
			r := &chunkReader{recv: func() (*skiffv1.CopyChunk, error) {
				ch, err := stream.Recv()
				if err != nil && !errors.Is(err, io.EOF) {
					err = a.fromDaemon(err)
				}
				return ch, err
			}}
			return a.writeArchive(output, "failed to export container", func(w io.Writer) error {
				_, err := io.Copy(w, r)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}
