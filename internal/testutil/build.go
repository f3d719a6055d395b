package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// ModuleRoot returns the directory holding skiff's go.mod, found by walking
// up from the working directory (go test runs in the package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// GoTool returns the go command: the one on PATH, else the one of the
// toolchain that built the test binary.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// BuildBinary builds the main package pkg (an import path relative to the
// module root, like "./cmd/skiff-runtime") into a temporary directory and
// returns the binary's path. Each package is built at most once per test
// binary; later calls return the same path. Call RemoveBuilds from TestMain
// to delete the binaries. It is usable from TestMain, where there is no
// testing.TB; tests use MustBuild.
//
// Building ./cmd/skiff-shim also builds ./cmd/skiff-shim-idle beside it,
// where the shim looks for its idle monitor.
func BuildBinary(pkg string) (string, error) {
	if strings.TrimSuffix(pkg, "/") == "./cmd/skiff-shim" {
		if _, err := BuildBinary("./cmd/skiff-shim-idle"); err != nil {
			return "", err
		}
	}
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[pkg]; ok {
		return bin, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "skiff-testbin-")
		if err != nil {
			return "", fmt.Errorf("build %s: %w", pkg, err)
		}
		// Readable by the unprivileged users some tests run as.
		if err := os.Chmod(d, 0o755); err != nil {
			return "", err
		}
		builds.dir = d
		builds.bins = map[string]string{}
	}
	bin := filepath.Join(builds.dir, filepath.Base(strings.TrimSuffix(pkg, "/")))
	cmd := exec.Command(GoTool(), "build", "-o", bin, pkg)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build -o %s %s: %w\n%s", bin, pkg, err, out)
	}
	builds.bins[pkg] = bin
	return bin, nil
}

// MustBuild is BuildBinary for tests: it fails the test loudly if the build
// fails.
func MustBuild(t testing.TB, pkg string) string {
	t.Helper()
	bin, err := BuildBinary(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// RemoveBuilds deletes the binaries built by BuildBinary.
func RemoveBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir = ""
		builds.bins = nil
	}
}
