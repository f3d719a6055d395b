// Command runtimebench measures skiff-runtime against runc and crun and
// writes the results to BENCHMARKS.md (see package bench/runtimebench):
//
//	go run ./bench/cmd/runtimebench -out BENCHMARKS.md
//	go run ./bench/cmd/runtimebench -rounds 10 -batch 0 -seccomp none
//
// It needs root, runc, crun and busybox-static. skiff-runtime is built from
// ./cmd/skiff-runtime unless -skiff-runtime names a binary; every measured
// command runs through the small spawner ./bench/cmd/rtspawn (built too), so
// that peak RSS is the runtime's, not this program's.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/bench/runtimebench"
	"github.com/skiff-containers/skiff/runtime/seccomp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "runtimebench:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "", "update this markdown file (e.g. BENCHMARKS.md); print to stdout if empty")
	rounds := flag.Int("rounds", 30, "timed runs per runtime and bundle")
	batch := flag.Int("batch", 100, "containers run back to back per runtime (0: skip)")
	skiffBin := flag.String("skiff-runtime", "", "skiff-runtime binary (default: go build ./cmd/skiff-runtime)")
	runcBin := flag.String("runc", "runc", "runc binary")
	crunBin := flag.String("crun", "crun", "crun binary (empty: leave crun out)")
	crunWrap := flag.Bool("crun-unshare", true, "run crun in a mount namespace without /sys/fs/cgroup/unified (needed on hybrid cgroup hosts)")
	spawner := flag.String("spawner", "", "spawner binary (default: go build ./bench/cmd/rtspawn)")
	sc := flag.String("seccomp", "default", `seccomp variant: "default" (Docker's profile from runtime/seccomp), "none", or a JSON file holding linux.seccomp`)
	execLat := flag.Bool("exec", true, "also measure `exec ID true` into a running container")
	flag.Parse()

	work, err := os.MkdirTemp("", "runtimebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	if *skiffBin == "" {
		*skiffBin = filepath.Join(work, "skiff-runtime")
		build := exec.Command("go", "build", "-o", *skiffBin, "./cmd/skiff-runtime")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/skiff-runtime (run from the repository root): %w", err)
		}
	}
	var rts []runtimebench.Runtime
	for _, r := range []struct{ name, bin string }{{"skiff-runtime", *skiffBin}, {"runc", *runcBin}, {"crun", *crunBin}} {
		if r.bin == "" {
			continue
		}
		p, err := exec.LookPath(r.bin)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		rt := runtimebench.Runtime{Name: r.name, Bin: p}
		if r.name == "crun" && *crunWrap {
			rt.Wrapper = runtimebench.CrunHybridWrapper
		}
		rts = append(rts, rt)
	}

	if *spawner == "" {
		*spawner = filepath.Join(work, "rtspawn")
		build := exec.Command("go", "build", "-o", *spawner, "./bench/cmd/rtspawn")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./bench/cmd/rtspawn: %w", err)
		}
	}
	cfg := runtimebench.Config{Runtimes: rts, Rounds: *rounds, Batch: *batch, WorkDir: work, Log: os.Stderr, Spawner: *spawner, Exec: *execLat}
	switch *sc {
	case "none", "":
	case "default":
		cfg.Seccomp, cfg.SeccompName = seccomp.DefaultProfile(), "Docker's default profile"
	default:
		data, err := os.ReadFile(*sc)
		if err != nil {
			return err
		}
		var prof specs.LinuxSeccomp
		if err := json.Unmarshal(data, &prof); err != nil {
			return fmt.Errorf("seccomp profile %s: %w", *sc, err)
		}
		cfg.Seccomp, cfg.SeccompName = &prof, filepath.Base(*sc)
	}
	rep, err := runtimebench.Run(context.Background(), cfg)
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
	fmt.Fprintln(os.Stderr, "runtimebench: wrote", *out)
	return nil
}
