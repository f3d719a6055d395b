// Command skiff-shim is the per-container monitor that the engine spawns:
// it detaches, creates the container through the OCI runtime, owns its
// stdio, writes its CRI log and exit file, and serves a control socket.
// See package github.com/skiff-containers/skiff/shim for the contract.
package main

import (
	"os"

	"github.com/skiff-containers/skiff/shim"
)

func main() {
	os.Exit(shim.Main(os.Args[1:], os.Stdout, os.Stderr))
}
