package engine

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/internal/imagebuild"
	"github.com/skiff-containers/skiff/internal/testutil"
)

// daemon is a skiffd started for one test.
type daemon struct {
	t                   *testing.T
	root, state, socket string
	args                []string
	// wrap, if set, is a command line skiffd's own is appended to.
	wrap   []string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
	// bridge and subnet are the default network's, unique per daemon so
	// that tests run in parallel (network_test.go).
	bridge, subnet string
}

// startDaemon starts skiffd on fresh temporary directories. At the end of
// the test it removes every container, stops the daemon, and checks that
// nothing is left: no mount, process or cgroup of the test's containers.
func startDaemon(t *testing.T, extraArgs ...string) *daemon {
	t.Helper()
	return startWrappedDaemon(t, nil, extraArgs...)
}

// startWrappedDaemon is startDaemon with skiffd run through wrap.
func startWrappedDaemon(t *testing.T, wrap []string, extraArgs ...string) *daemon {
	t.Helper()
	base, err := os.MkdirTemp("", "skiff-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		t: t, root: filepath.Join(base, "root"), state: filepath.Join(base, "state"),
		socket: filepath.Join(base, "state", "skiffd.sock"), args: extraArgs, wrap: wrap,
	}
	d.bridge, d.subnet = testDefaultNetwork(t)
	d.start()
	t.Cleanup(func() {
		d.cleanup()
		testutil.CheckNoLeftovers(t, testutil.Leftovers{Dirs: []string{base}})
		if !t.Failed() {
			os.RemoveAll(base)
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	args := append([]string{"--root", d.root, "--state", d.state, "--socket", d.socket,
		"--config", "/dev/null", "--log-level", "debug",
		"--default-bridge", d.bridge, "--default-subnet", d.subnet}, d.args...)
	argv := append(append(append([]string(nil), d.wrap...), bins.skiffd), args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.log = &bytes.Buffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start skiffd: %v", err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { cmd.Wait(); close(ch) }(d.cmd, d.exited)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			d.t.Fatalf("skiffd exited at start: %s\n%s", d.cmd.ProcessState, d.log)
		default:
		}
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("skiffd did not serve %s within 20s:\n%s", d.socket, d.log)
}

// kill9 kills skiffd the hard way, as a crash would.
func (d *daemon) kill9() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// stop stops skiffd with SIGTERM.
func (d *daemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.t.Errorf("skiffd did not stop on SIGTERM within 15s")
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// cleanup removes all containers and images through the CLI, stops the
// daemon, and on failure prints its log.
func (d *daemon) cleanup() {
	if d.running() {
		if ids := strings.Fields(d.run("ps", "-aq", "--no-trunc").Stdout); len(ids) > 0 {
			if r := d.run(append([]string{"rm", "-f"}, ids...)...); r.Code != 0 {
				d.t.Errorf("cleanup: skiff rm -f: %s", r)
			}
		}
		d.stop()
	}
	d.checkNetworkLeftovers()
	if d.t.Failed() {
		d.t.Logf("skiffd log:\n%s", d.log)
	}
}

// result is what a skiff command did.
type result struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return "skiff " + strings.Join(r.Args, " ") + ": exit " + strconv.Itoa(r.Code) + "\nstdout: " + r.Stdout + "\nstderr: " + r.Stderr
}

// run runs the skiff CLI against the daemon with no stdin.
func (d *daemon) run(args ...string) result {
	return d.runIn(nil, args...)
}

func (d *daemon) runIn(stdin []byte, args ...string) result {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--socket", d.socket}, args...)
	cmd := exec.CommandContext(ctx, bins.skiff, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{Args: args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		d.t.Fatalf("skiff %v: %v", args, err)
	}
	if ctx.Err() != nil {
		d.t.Fatalf("skiff %v timed out:\n%s", args, r)
	}
	return r
}

// must runs skiff and fails the test unless it exits 0.
func (d *daemon) must(args ...string) string {
	d.t.Helper()
	r := d.run(args...)
	if r.Code != 0 {
		d.t.Fatalf("%s", r)
	}
	return r.Stdout
}

// registry is a test registry seeded with the busybox image.
type registry struct {
	*remotetest.Registry
	// Busybox is the pushed image's reference, e.g. 127.0.0.1:PORT/skiff/busybox:latest.
	Busybox string
	image   *imagebuild.Image
}

// startRegistry starts a registry and pushes the busybox image as repo:tag.
func startRegistry(t *testing.T) *registry {
	t.Helper()
	if err := imagebuild.Available(); err != nil {
		t.Fatal(err)
	}
	r := &registry{Registry: remotetest.Start(t)}
	img, err := imagebuild.Build(imagebuild.Options{Name: r.Domain + "/skiff/busybox:latest"})
	if err != nil {
		t.Fatal(err)
	}
	r.image = img
	r.Busybox = r.Domain + "/skiff/busybox:latest"
	r.push(t, "skiff/busybox", "latest", img)
	return r
}

func (r *registry) push(t *testing.T, repo, tag string, img *imagebuild.Image) {
	t.Helper()
	ctx := context.Background()
	for _, b := range []imagebuild.Blob{img.Layer, img.Config} {
		if err := r.PushBlob(ctx, repo, b.Descriptor, b.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.PushManifest(ctx, repo, tag, img.Manifest.Descriptor, img.Manifest.Data); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
