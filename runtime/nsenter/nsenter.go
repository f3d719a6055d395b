// Package nsenter owns the first step of the container's init process: joining
// namespaces by path and creating new ones before the Go runtime starts its
// threads (setns into mount and user namespaces is refused to a multi-threaded
// process). It is a C constructor that acts only when the parent set
// _SKIFF_NSENTER_FD; importing the package for its side effect is all that is
// needed. It must not do anything else: mounts, cgroups and users are the Go
// init's job. The one other thing it does, in every process of the binary,
// is startup tuning that only C can do before the Go runtime starts: a single
// malloc arena, and the data and bss pages populated at once (see
// prefault_data) rather than faulted in one by one.
package nsenter

// #cgo CFLAGS: -Wall -O2
import "C"

// EnvFD names the environment variable holding the socket the constructor
// reads its request from.
const EnvFD = "_SKIFF_NSENTER_FD"
