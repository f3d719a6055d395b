// Command skiff-runtime is skiff's OCI runtime, a drop-in for runc: the same
// commands, flags, state JSON and exit codes. This main only wires flags to
// runtime/container; the work is done there and in runtime/initproc.
package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/skiff-containers/skiff/runtime/initproc"
	_ "github.com/skiff-containers/skiff/runtime/nsenter"  // joins namespaces before the Go runtime starts
	_ "github.com/skiff-containers/skiff/runtime/prefault" // populates the heap's next pages at once
)

func init() {
	// The container's init must keep per-thread state (capabilities,
	// seccomp, the cgroup namespace) on the thread that execs: it stays on
	// the main thread. The runtime's own commands must not: a locked main
	// goroutine makes every switch to or from it a handoff between
	// threads (a futex wake and a context switch each; over a thousand
	// futex calls in a `run`).
	if isInit() {
		runtime.LockOSThread()
	}
	// Every command but a foreground run/exec and events is over in
	// milliseconds and allocates little: collecting garbage only costs
	// time. The long-running ones turn the collector back on.
	debug.SetGCPercent(-1)
	// GOMAXPROCS stays the Go runtime's default: runtime.GOMAXPROCS(1)
	// here cost a stop-the-world resize of 0.9 ms, more than the context
	// switches it spared (A/B of `run`, 80 rounds: 42.2 ms without it,
	// 42.9 ms with it).
}

func main() {
	if isInit() {
		os.Exit(initproc.Main())
	}
	os.Exit(run(os.Args[1:]))
}

func isInit() bool { return len(os.Args) > 1 && os.Args[1] == "init" }
