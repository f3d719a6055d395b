// Command enginebench measures skiffd + skiff against containerd and
// podman and writes the results to BENCHMARKS.md (package
// bench/enginebench):
//
//	make build && go run ./bench/cmd/enginebench -out BENCHMARKS.md
//
// It needs root, runc, containerd, podman, docker-registry and
// busybox-static (hack/deps.sh installs them).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/skiff-containers/skiff/bench/enginebench"
)

func main() {
	out := flag.String("out", "", "update this markdown file (e.g. BENCHMARKS.md); print to stdout if empty")
	bin := flag.String("bin", "bin", "directory with skiffd, skiff, skiff-shim and skiff-runtime (make build)")
	runc := flag.String("runc", "runc", "runc binary for the peers")
	rounds := flag.Int("rounds", 20, "rounds of run --rm per engine")
	pullRounds := flag.Int("pull-rounds", 3, "rounds of the cold pull per engine")
	layers := flag.Int("layers", 6, "random-data layers of the big image (on top of busybox)")
	layerMiB := flag.Int("layer-mib", 20, "MiB per random-data layer")
	containers := flag.Int("containers", 20, "idle containers per engine for the memory part (0: skip)")
	flag.Parse()

	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := enginebench.Run(ctx, enginebench.Config{
		BinDir: abs, Runc: *runc, Rounds: *rounds, PullRounds: *pullRounds,
		BigLayers: *layers, BigLayerMiB: *layerMiB, Containers: *containers,
		Log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, "enginebench: "+format+"\n", args...) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(1)
	}
	if *out == "" {
		fmt.Print(rep.Markdown())
		return
	}
	if err := rep.WriteFile(*out); err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(1)
	}
}
