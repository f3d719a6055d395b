// Command rtspawn is the spawner of runtimebench: it runs its arguments as
// a command and prints "WALL_NS MAXRSS_KIB EXIT_CODE". It is a separate,
// small, static program because a child's peak RSS can never be lower than
// the size of the process that forked it (see runtimebench.SpawnEnv);
// runtimebench builds it and runs every measured command through it.
package main

import (
	"fmt"
	"os"

	"github.com/skiff-containers/skiff/bench/runtimebench"
)

func main() {
	os.Setenv(runtimebench.SpawnEnv, "1")
	runtimebench.SpawnerMain()
	fmt.Fprintln(os.Stderr, "rtspawn: unreachable")
	os.Exit(2)
}
