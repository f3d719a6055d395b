// Command skiff-runtime is skiff's OCI runtime, a drop-in for runc: the same
// commands, flags, state JSON and exit codes. This main only wires flags to
// runtime/container; the work is done there and in runtime/initproc.
package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/skiff-containers/skiff/runtime/initproc"
	_ "github.com/skiff-containers/skiff/runtime/nsenter" // joins namespaces before the Go runtime starts
)

func init() {
	// The container's init must keep per-thread state (capabilities,
	// seccomp, the cgroup namespace) on the thread that execs.
	runtime.LockOSThread()
	// Every command but a foreground run/exec and events is over in
	// milliseconds and allocates little: collecting garbage only costs
	// time. The long-running ones turn the collector back on.
	debug.SetGCPercent(-1)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		os.Exit(initproc.Main())
	}
	os.Exit(run(os.Args[1:]))
}
