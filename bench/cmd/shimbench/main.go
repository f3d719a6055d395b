// Command shimbench measures the idle memory of skiff-shim against conmon
// and containerd-shim-runc-v2 with N containers each, and prints a markdown
// section or updates BENCHMARKS.md (see package bench/shimbench):
//
//	go run ./bench/cmd/shimbench -out BENCHMARKS.md
//	go run ./bench/cmd/shimbench -n 5 -podman=false -containerd=false
//
// It needs root, runc, podman (with conmon), containerd and ctr, and the
// host's static busybox. skiff-shim and skiff-runtime are built from this
// tree unless -skiff-shim and -skiff-runtime name binaries.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/skiff-containers/skiff/bench/shimbench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "shimbench:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "", "update this markdown file (e.g. BENCHMARKS.md) between its shimbench markers; print to stdout if empty")
	n := flag.Int("n", 20, "containers per monitor kind")
	settle := flag.Duration("settle", shimbench.DefaultSettle, "idle time before the reading (over 2 minutes includes the Go monitors' periodic GC)")
	shimBin := flag.String("skiff-shim", "", "skiff-shim binary (default: go build ./cmd/skiff-shim; \"none\" leaves it out)")
	skiffRT := flag.String("skiff-runtime", "", "skiff-runtime binary (default: go build ./cmd/skiff-runtime; \"none\": skiff-shim with runc only)")
	runcBin := flag.String("runc", "runc", "runc binary")
	podman := flag.Bool("podman", true, "measure conmon (podman)")
	containerd := flag.Bool("containerd", true, "measure containerd-shim-runc-v2")
	flag.Parse()
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}

	work, err := os.MkdirTemp("", "shimbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	build := func(bin *string, pkg, name string) error {
		if *bin != "" {
			return nil
		}
		*bin = filepath.Join(work, name)
		cmd := exec.Command("go", "build", "-o", *bin, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s (run from the repository root): %w", pkg, err)
		}
		return nil
	}
	runc, err := exec.LookPath(*runcBin)
	if err != nil {
		return err
	}
	if runc, err = filepath.Abs(runc); err != nil {
		return err
	}
	cfg := shimbench.Config{N: *n, Runc: runc, Podman: *podman, Containerd: *containerd, Settle: *settle, WorkDir: work, Log: os.Stderr}
	if *shimBin != "none" {
		if *shimBin == "" {
			// The shim parks in skiff-shim-idle, which it looks for beside itself.
			idle := ""
			if err := build(&idle, "./cmd/skiff-shim-idle", "skiff-shim-idle"); err != nil {
				return err
			}
		}
		if err := build(shimBin, "./cmd/skiff-shim", "skiff-shim"); err != nil {
			return err
		}
		cfg.Shim = *shimBin
		if *skiffRT != "none" {
			if err := build(skiffRT, "./cmd/skiff-runtime", "skiff-runtime"); err != nil {
				return err
			}
			cfg.ShimRuntimes = append(cfg.ShimRuntimes, shimbench.Runtime{Name: "skiff-runtime", Bin: *skiffRT})
		}
		cfg.ShimRuntimes = append(cfg.ShimRuntimes, shimbench.Runtime{Name: "runc", Bin: runc})
	}
	rep, err := shimbench.Run(context.Background(), cfg)
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Print(rep.Markdown())
		return nil
	}
	if err := rep.WriteFile(*out); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "shimbench: wrote", *out)
	return nil
}
