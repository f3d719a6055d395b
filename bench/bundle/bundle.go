// Package bundle builds OCI bundles for tests and benchmarks out of the host's
// static busybox: a rootfs with /bin/busybox and a symlink per applet, and a
// config.json equal to the default written by `runc spec` (with terminal
// false). It never downloads anything.
//
// It lives outside internal/testutil because the benchmark program
// (bench/cmd/runtimebench) is not test code and must not import testutil;
// testutil's BusyboxRootfs and BusyboxBundle are thin wrappers around it.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/skiff-containers/skiff/runtime/spec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BusyboxPath is the host's static busybox, copied into every rootfs.
// Debian's busybox-static package installs it there.
const BusyboxPath = "/bin/busybox"

// AppUID and AppGID are the ids of the unprivileged user "app" in the
// rootfs's /etc/passwd and /etc/group.
const (
	AppUID = 1000
	AppGID = 1000
)

const passwd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
tty:x:5:
app:x:1000:
nogroup:x:65534:
`

// BusyboxRootfs populates dir (created if missing) with a minimal root
// filesystem: /bin/busybox (a copy of BusyboxPath), a symlink in /bin for
// every applet that `busybox --list` reports, the directories /proc /sys /dev
// /etc /tmp /root /home/app, and an /etc/passwd and /etc/group that know root,
// app (1000:1000) and nobody.
func BusyboxRootfs(dir string) error {
	applets, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("list busybox applets with %s --list: %w (install busybox-static)", BusyboxPath, err)
	}
	dirs := []struct {
		path string
		mode os.FileMode
	}{
		{"", 0o755},
		{"bin", 0o755},
		{"proc", 0o555},
		{"sys", 0o555},
		{"dev", 0o755},
		{"etc", 0o755},
		{"tmp", os.ModeSticky | 0o777},
		{"root", 0o700},
		{"home", 0o755},
		{"home/app", 0o755},
	}
	for _, d := range dirs {
		p := filepath.Join(dir, d.path)
		if err := os.MkdirAll(p, d.mode); err != nil {
			return fmt.Errorf("build rootfs %s: %w", dir, err)
		}
		// MkdirAll is subject to the umask and ignores sticky bits.
		if err := os.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("build rootfs %s: %w", dir, err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "home/app"), AppUID, AppGID); err != nil {
		return fmt.Errorf("build rootfs %s: %w", dir, err)
	}
	if err := copyFile(BusyboxPath, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return fmt.Errorf("build rootfs %s: %w", dir, err)
	}
	for _, name := range strings.Fields(string(applets)) {
		if name == "busybox" || strings.Contains(name, "/") {
			continue
		}
		link := filepath.Join(dir, "bin", name)
		if err := os.Symlink("busybox", link); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("build rootfs %s: %w", dir, err)
		}
	}
	files := []struct {
		path, data string
		mode       os.FileMode
	}{
		{"etc/passwd", passwd, 0o644},
		{"etc/group", group, 0o644},
		{"etc/hostname", "busybox\n", 0o644},
		{"etc/hosts", "127.0.0.1 localhost\n", 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("build rootfs %s: %w", dir, err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return fmt.Errorf("build rootfs %s: %w", dir, err)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// DefaultSpec returns the configuration that `runc spec` writes (runc
// 1.1's default), except that process.terminal is false and process.args is
// args. The rootfs is "rootfs", relative to the bundle, and read-only.
func DefaultSpec(args ...string) *specs.Spec {
	s := spec.Default()
	s.Process.Terminal = false
	s.Process.Args = append([]string(nil), args...)
	return s
}

// WriteSpec writes spec as bundle/config.json, replacing any previous one.
func WriteSpec(bundle string, spec *specs.Spec) error {
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encode config.json for bundle %s: %w", bundle, err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		return fmt.Errorf("write config.json for bundle %s: %w", bundle, err)
	}
	return nil
}

// Create makes bundle (which must not contain a rootfs yet) into a busybox
// bundle running args, and returns the spec it wrote.
func Create(bundle string, args ...string) (*specs.Spec, error) {
	if err := BusyboxRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		return nil, err
	}
	spec := DefaultSpec(args...)
	if err := WriteSpec(bundle, spec); err != nil {
		return nil, err
	}
	return spec, nil
}
