// Command skiff-shim-idle is skiff-shim's idle monitor: skiff-shim execs
// it in its own place while nobody talks to the shim, and it execs
// skiff-shim again when a request needs it. It is not run by hand. See
// package github.com/skiff-containers/skiff/shim/idle.
package main

import (
	"syscall"
	_ "unsafe" // for go:linkname

	"github.com/skiff-containers/skiff/shim/idle"
)

// runtimeArgs is the runtime's copy of argv, which package os would
// otherwise give (os is not linked: see package idle).
//
//go:linkname runtimeArgs os.runtime_args
func runtimeArgs() []string

// The shim execs this program through /proc/self/fd/N, which names the
// process "N"; init runs on the main thread, whose name is the process's.
func init() { idle.NameProcess() }

// runtimeEnvs is the runtime's copy of the environment (package syscall's
// Environ would first copy it into a map).
//
//go:linkname runtimeEnvs syscall.runtime_envs
func runtimeEnvs() []string

func main() {
	syscall.Exit(idle.Main(runtimeArgs()[1:], runtimeEnvs()))
}
